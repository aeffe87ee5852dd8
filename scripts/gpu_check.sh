#!/usr/bin/env bash
# One prepared GPU check (see scripts/gpu_check.py).  On a machine with a CUDA torch:
#   bash scripts/gpu_check.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'" 
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" python scripts/gpu_check.py "${1:-${OUT:-/tmp}/gpu-check-traces}"
