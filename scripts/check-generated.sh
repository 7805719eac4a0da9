#!/usr/bin/env bash
# Fails when generated code is stale: regenerates everything (scripts/generate.sh), then requires that
# nothing under the generated directories changed or appeared.
set -euo pipefail
cd "$(dirname "$0")/.."

GENERATED=(gen clients/go/gen clients/python/src/fieldseal_client/gen)

bash scripts/generate.sh
if ! git diff --exit-code --stat -- "${GENERATED[@]}" ||
  [[ -n "$(git ls-files --others --exclude-standard -- "${GENERATED[@]}")" ]]; then
  echo "generated code is stale: run 'npm run generate' and commit the result" >&2
  git ls-files --others --exclude-standard -- "${GENERATED[@]}" >&2
  exit 1
fi
echo "generated code is up to date"
