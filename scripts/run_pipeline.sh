#!/usr/bin/env bash
# The main job on the embedded default: set up .venv, build the synthetic corpus, render a held-out clip.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
.venv/bin/facerl pipeline "$@"
