#!/usr/bin/env bash
# The speed figures on a GPU: engine throughput and start-up (targets 1 and 2), time to
# accuracy (5), the bf16 and torch.compile speed-ups against the hand-written loop's, and
# data-parallel scaling with NCCL, one rank per visible GPU (with one GPU it reports the
# one-GPU throughput and says so).
#
# A GPU machine often cannot reach a package index, but it has CUDA's torch. So:
#   1. where pip works:   benchmarks/gpu.sh fetch     (the project's wheels, torch excluded, into .whl/)
#   2. on the GPU machine: benchmarks/gpu.sh          (installs from .whl/ beside its torch, runs, writes
#                                                      benchmarks/results/<name>-cuda.json)
# With a reachable index, step 2 alone does: it installs from the index instead.
# Finishes in a few minutes on one GPU; the tests never need it.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
WHEELS=.whl

if [[ "${1:-}" == "fetch" ]]; then
    # For the GPU machine's Python (PYVER, 3.12 by default), not necessarily this one's:
    # every runtime dependency but torch, and the build backend `pip install -e .` needs.
    "$PYTHON" - <<'PY'
import os, subprocess, sys, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))
needs = [d for d in project["project"]["dependencies"] if not d.startswith("torch")]
needs += project["build-system"]["requires"]
platforms = ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "any"]
subprocess.run(
    [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--dest", ".whl",
     "--python-version", os.environ.get("PYVER", "3.12"), "--implementation", "cp",
     *(arg for p in platforms for arg in ("--platform", p)), *needs],
    check=True,
)
PY
    echo "wheels in $WHEELS/: carry that folder to the GPU machine"
    exit 0
fi

"$PYTHON" -c 'import torch; assert torch.cuda.is_available(), "no CUDA device"; print(torch.__version__, torch.cuda.get_device_name())'

# A venv that sees the machine's own CUDA torch, with the project installed beside it.
VENV=${VENV:-/tmp/taas-gpu}
"$PYTHON" -m venv --system-site-packages "$VENV"
if [[ -d "$WHEELS" ]]; then
    "$VENV/bin/pip" install --quiet --no-index --find-links "$WHEELS" --no-build-isolation \
        -e . || "$VENV/bin/pip" install --quiet --no-index --find-links "$WHEELS" -e .
else
    "$VENV/bin/pip" install --quiet -e .
fi

export TAAS_BENCH_DEVICE=cuda
export TAAS_BENCH_PROCESSES=$("$PYTHON" -c 'import torch; print(torch.cuda.device_count())')
export PYTHONUNBUFFERED=1
"$VENV/bin/python" -m benchmarks engine accuracy levers scaling
