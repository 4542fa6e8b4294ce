#!/usr/bin/env bash
# The speed issue's GPU checks in one run (scripts/gpu_check.py says what they are). On a GPU machine that has
# PyTorch, from the repository root, with Omniglot under datasets/ (suite fetch omniglot, or a copy):
#   OUT=some-folder scripts/gpu-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --no-deps --no-build-isolation -e . >/dev/null
PYTHONUNBUFFERED=1 python3 scripts/gpu_check.py
