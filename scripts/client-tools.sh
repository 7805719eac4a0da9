#!/usr/bin/env bash
# Installs the pinned toolchain pieces the Python and Go clients need, idempotently:
#   - protoc-gen-go and protoc-gen-go-grpc into .tools/bin (from the Go module proxy);
#   - the Python client, its code generator (grpcio-tools) and its test tools into .venv (from PyPI).
# Each part keeps a stamp of what it installed and is skipped while the stamp matches, so a second run
# costs a few milliseconds. Bump versions here (Go plugins) or in clients/python/requirements-dev.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

PROTOC_GEN_GO_VERSION="v1.36.12"
PROTOC_GEN_GO_GRPC_VERSION="v1.6.2"

TOOLS_BIN="$PWD/.tools/bin"
VENV=".venv"

go_tools() {
  local want="protoc-gen-go@$PROTOC_GEN_GO_VERSION protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC_VERSION"
  local stamp="$TOOLS_BIN/.fieldseal-go-tools"
  if [[ -x "$TOOLS_BIN/protoc-gen-go" && -x "$TOOLS_BIN/protoc-gen-go-grpc" && -f "$stamp" &&
    "$(cat "$stamp")" == "$want" ]]; then
    return 0
  fi
  mkdir -p "$TOOLS_BIN"
  GOBIN="$TOOLS_BIN" go install "google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO_VERSION"
  GOBIN="$TOOLS_BIN" go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC_VERSION"
  printf '%s' "$want" >"$stamp"
  echo "client-tools: installed $want in .tools/bin"
}

python_tools() {
  local req="clients/python/requirements-dev.txt"
  local want
  want="$(cat "$req" clients/python/pyproject.toml | sha256sum | cut -d' ' -f1)"
  local stamp="$VENV/.fieldseal-python-client"
  if [[ -x "$VENV/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    return 0
  fi
  if [[ ! -x "$VENV/bin/python" ]]; then
    python3 -m venv "$VENV"
  fi
  # The tests import the package from clients/python/src (pytest's pythonpath), so only its pinned
  # dependencies are installed here.
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
  printf '%s' "$want" >"$stamp"
  echo "client-tools: installed $req in $VENV"
}

case "${1:-all}" in
  go) go_tools ;;
  python) python_tools ;;
  all)
    go_tools
    python_tools
    ;;
  *)
    echo "usage: $0 [go|python|all]" >&2
    exit 2
    ;;
esac
