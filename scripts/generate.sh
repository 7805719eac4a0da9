#!/usr/bin/env bash
# Regenerates every piece of code generated from proto/: TypeScript (gen/, buf.gen.yaml), Go
# (clients/go/gen/, buf.gen.go.yaml) and Python (clients/python/src/fieldseal_client/gen/, grpcio-tools).
# All generators are pinned: buf and protoc-gen-es in package-lock.json, the Go plugins and grpcio-tools in
# scripts/client-tools.sh and clients/python/requirements-dev.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/client-tools.sh

npx --no-install buf generate
npx --no-install buf generate --template buf.gen.go.yaml

# Python: grpcio-tools' bundled protoc, with the well-known types it ships. Only the Fieldseal service is
# generated; grpcio-health-checking and grpcio-reflection cover the standard services.
PY_OUT="clients/python/src/fieldseal_client/gen"
rm -rf "$PY_OUT"
mkdir -p "$PY_OUT"
WKT="$(.venv/bin/python -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))')"
.venv/bin/python -m grpc_tools.protoc -I proto -I "$WKT" \
  --python_out="$PY_OUT" --pyi_out="$PY_OUT" --grpc_python_out="$PY_OUT" \
  proto/fieldseal/v1/fieldseal.proto
# protoc writes absolute imports (`from fieldseal.v1 import ...`); inside this package they must name it.
sed -i 's/^from fieldseal\.v1 import /from fieldseal_client.gen.fieldseal.v1 import /' \
  "$PY_OUT/fieldseal/v1/"*.py "$PY_OUT/fieldseal/v1/"*.pyi
for dir in "$PY_OUT" "$PY_OUT/fieldseal" "$PY_OUT/fieldseal/v1"; do
  printf '"""Generated from proto/ by scripts/generate.sh. Do not edit."""\n' >"$dir/__init__.py"
done
