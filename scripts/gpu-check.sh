#!/usr/bin/env bash
# GPU evidence in one run: the GPU-marked tests (device selection, float16/bfloat16, offload, single-file,
# LoRA, an edit, torch.compile, VAE tiling's memory) and `gouache bench --only overhead` with the server on
# CUDA. Needs a CUDA build of torch in the Python it runs (PYTHON, default `python`); see README "GPUs".
# Rows and logs go to $OUT when it is set (a folder), else to ./gpu-check.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
OUT=${OUT:-gpu-check}
mkdir -p "$OUT"

"$PY" - <<'PYEOF'
import sys

import torch

if not torch.cuda.is_available():
    sys.exit(f"gpu-check: torch {torch.__version__} sees no CUDA device (built for CUDA {torch.version.cuda}).")
props = torch.cuda.get_device_properties(0)
print(f"gpu-check: {props.name}, {props.total_memory / 2**30:.0f} GiB, torch {torch.__version__}, "
      f"CUDA {torch.version.cuda}")
PYEOF

status=0
"$PY" -m pytest -q -p no:cacheprovider -m gpu -rs tests/test_gpu.py --junitxml "$OUT/gpu-tests.xml" \
    2>&1 | tee "$OUT/gpu-tests.log" || status=1
GOUACHE_DEVICE=cuda "$PY" -m gouache.cli bench --only overhead --only devices --json "$OUT/gpu-bench.json" \
    2>&1 | tee "$OUT/gpu-bench.log" || status=1
exit $status
