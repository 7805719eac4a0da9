#!/usr/bin/env bash
# Runs the Python and Go client suites after the TypeScript tests (`npm test`): the shared envelope
# vectors in both languages, and live calls to a Fieldseal server each suite starts from this checkout's
# build. Tools come from scripts/client-tools.sh (run by `pretest`); both steps are cached: pip is skipped
# while its stamp matches, and go test reuses the module and build caches.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/client-tools.sh
# The live tests start bin/fieldseal.js, which runs the compiled dist/.
npm run --silent build

echo "client tests: Python (clients/python)"
(cd clients/python && ../../.venv/bin/python -m pytest -q -p no:cacheprovider)

echo "client tests: Go (clients/go)"
# -count=1: the live tests depend on the server build, which go test's cache cannot see.
(cd clients/go && go test -count=1 ./...)

echo "deployment: Helm chart (deploy/helm/validate: helm lint --strict, every values combination rendered and decoded strictly)"
# The helm that scripts/test-deps.sh built from the pinned version.
FIELDSEAL_HELM="$PWD/.tools/bin/helm-$(cat deploy/helm/helm-version)"
export FIELDSEAL_HELM
(cd deploy/helm/validate && go test -count=1 ./...)
