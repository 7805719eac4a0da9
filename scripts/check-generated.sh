#!/usr/bin/env bash
# Fails when the committed generated code differs from what the generator produces from proto/ now.
set -euo pipefail
cd "$(dirname "$0")/.."
npm run --silent generate
if ! git diff --exit-code --stat -- gen/ || [[ -n "$(git ls-files --others --exclude-standard -- gen/)" ]]; then
  echo "generated code is stale: run 'npm run generate' and commit gen/" >&2
  exit 1
fi
echo "generated code is up to date"
