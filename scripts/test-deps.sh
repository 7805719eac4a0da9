#!/usr/bin/env bash
# Installs what the test suite needs beyond npm packages, idempotently: a Python virtual environment with
# the pinned Secrets Manager emulator (moto's server), then the Python and Go clients' pinned tools
# (scripts/client-tools.sh). Safe to run again; it does nothing when up to date.
set -euo pipefail
cd "$(dirname "$0")/.."

# `npm test` on a fresh clone works too: install the locked npm packages first if they are missing.
if [[ ! -x node_modules/.bin/vitest || ! -x node_modules/.bin/node ]]; then
  npm ci --no-audit --no-fund
fi

# Bump this pin deliberately: the store tests depend on moto's Secrets Manager behaviour.
MOTO_SPEC="moto[server]==5.2.5"
VENV=".venv"
STAMP="$VENV/.fieldseal-test-deps"

# The TLS tests make their certificates with the openssl CLI (Node cannot sign X.509 certificates).
if ! command -v openssl >/dev/null; then
  echo "test-deps: openssl is missing; install it (Debian/Ubuntu: apt-get install -y openssl)" >&2
  exit 1
fi

if ! [[ -x "$VENV/bin/moto_server" && -f "$STAMP" && "$(cat "$STAMP")" == "$MOTO_SPEC" ]]; then
  if [[ ! -x "$VENV/bin/python" ]]; then
    python3 -m venv "$VENV"
  fi
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$MOTO_SPEC"
  "$VENV/bin/moto_server" --help >/dev/null
  printf '%s' "$MOTO_SPEC" >"$STAMP"
  # moto may have moved a shared dependency: reinstall the clients' pins after it.
  rm -f "$VENV/.fieldseal-python-client"
  echo "test-deps: installed $MOTO_SPEC in $VENV"
fi

bash scripts/client-tools.sh

# The Cognigy Extension (clients/cognigy-extension) has its own locked packages (@cognigy/extension-tools,
# esbuild); its tests import its sources and build its tarball. Install them when missing.
if [[ ! -f clients/cognigy-extension/node_modules/@cognigy/extension-tools/package.json \
  || ! -x clients/cognigy-extension/node_modules/.bin/esbuild ]]; then
  npm ci --prefix clients/cognigy-extension --no-audit --no-fund
fi
