#!/usr/bin/env bash
# Benchmarks that need CUDA; run on a machine with NVIDIA GPUs and a CUDA build of torch in
# the project's environment (`make bench` covers the CPU figures). Results go to
# benchmarks/results/<name>.json like every other benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}

if ! "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "gpu.sh: torch sees no CUDA device here; nothing to measure" >&2
    exit 1
fi
gpus=$("$PYTHON" -c 'import torch; print(torch.cuda.device_count())')

# --- Data-parallel scaling with NCCL ---------------------------------------------------
# One rank per visible GPU against one GPU, same per-GPU batch (weak scaling); target
# efficiency >= 0.90. With one GPU it reports the one-GPU throughput and says so.
echo "DDP scaling over $gpus GPU(s) (NCCL)"
BENCH_DEVICE=cuda BENCH_PROCESSES=$gpus "$PYTHON" -m benchmarks scaling
