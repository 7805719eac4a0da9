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

# nginx, for the replicas-behind-a-load-balancer test (test/ops/replicas-nginx.test.ts) and the bench's
# `scale` part: the Debian package, installed only when missing and only where apt-get can (root). Without
# it that test fails and says so, unless FIELDSEAL_SKIP_NGINX_TESTS=1.
if ! command -v nginx >/dev/null && [[ ! -x /usr/sbin/nginx ]]; then
  if [[ "$(id -u)" == "0" ]] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null
    echo "test-deps: installed nginx-light"
  else
    echo "test-deps: nginx is missing (Debian/Ubuntu: sudo apt-get install -y nginx-light); the nginx test will fail unless FIELDSEAL_SKIP_NGINX_TESTS=1" >&2
  fi
fi
