#!/usr/bin/env bash
# Assembles the container image's runtime layout from a built checkout: the one place that says what the
# image holds, used by the Dockerfile's build stage and by test/deploy/runtime-layout.test.ts, so the two
# cannot drift apart.
#
#   scripts/runtime-layout.sh SRC DEST
#
# SRC is a checkout with dist/ built (`npm run build`); DEST must not exist. DEST receives package.json,
# package-lock.json, bin/, the compiled dist/ (JavaScript and source maps, no declarations) and the
# production dependencies only (`npm ci --omit=dev`; their install scripts are not run: none is needed).
# Extra npm flags come from the environment, e.g. npm_config_prefer_offline=true in the test. Every file
# is left read-only: the server writes only where its config points (FIELDSEAL_DATA_DIR, an audit file).
set -euo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: $0 SRC DEST" >&2
  exit 2
fi
src="$1"
dest="$2"
if [[ ! -f "$src/dist/src/cli.js" ]]; then
  echo "runtime-layout: $src/dist/src/cli.js is missing: run npm run build first" >&2
  exit 1
fi
if [[ -e "$dest" ]]; then
  echo "runtime-layout: $dest already exists" >&2
  exit 1
fi

mkdir -p "$dest"
cp "$src/package.json" "$src/package-lock.json" "$dest/"
cp -R "$src/bin" "$dest/bin"
mkdir -p "$dest/dist"
cp -R "$src/dist/src" "$src/dist/gen" "$dest/dist/"
find "$dest/dist" -name '*.d.ts' -delete

(cd "$dest" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error)

chmod -R a-w "$dest"
