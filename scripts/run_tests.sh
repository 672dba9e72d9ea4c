#!/usr/bin/env bash
# The test suite (default: fast tests; pass -m slow for the slow ones). Sets up .venv first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
.venv/bin/python -m pytest "$@"
