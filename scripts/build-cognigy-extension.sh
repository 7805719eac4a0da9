#!/usr/bin/env bash
# Builds the Cognigy Extension's uploadable tarball (clients/cognigy-extension/fieldseal-cognigy-extension.tar.gz),
# first installing the Extension's own locked packages when they are missing.
set -euo pipefail
cd "$(dirname "$0")/../clients/cognigy-extension"
if [[ ! -f node_modules/@cognigy/extension-tools/package.json || ! -x node_modules/.bin/esbuild ]]; then
  npm ci --no-audit --no-fund
fi
node scripts/build.mjs
