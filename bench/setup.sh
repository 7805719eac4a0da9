#!/usr/bin/env bash
# Installs what `npm run bench` needs beyond npm packages, idempotently: the test dependencies (moto's
# server in .venv) and the tutorial's pinned Python dependencies in their own virtual environment, so the
# tutorial's boto3 1.34.0 (and its botocore) cannot downgrade the emulator's.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/test-deps.sh

# The tutorial's "External dependencies", exactly as it pins them.
TUTORIAL_SPEC="httpx==0.27.0 cryptography==42.0.0 boto3==1.34.0 pydantic==2.6.0"
VENV=".venv-tutorial"
STAMP="$VENV/.fieldseal-bench-deps"
if [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$TUTORIAL_SPEC" ]]; then
  exit 0
fi
if [[ ! -x "$VENV/bin/python" ]]; then
  python3 -m venv "$VENV"
fi
# shellcheck disable=SC2086
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check $TUTORIAL_SPEC
printf '%s' "$TUTORIAL_SPEC" >"$STAMP"
echo "bench setup: installed $TUTORIAL_SPEC in $VENV"
