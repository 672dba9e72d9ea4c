#!/usr/bin/env bash
# Create .venv (if missing) and install facerl with its test extras. Needs only Python 3.11+ and pip.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# torch first, pinned: 2.13.0 resolves to the CPU wheel here; other pins pull gigabytes of CUDA packages.
.venv/bin/python -m pip install --quiet --disable-pip-version-check torch==2.13.0
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[test]"
