"""Data-parallel scaling: a compute-bound CNN job with N DDP processes against the same
job in one process, through the service.

Runs alternate (one process, N processes, ...) on the same worker; the figure is the
median of efficiency = samples/s with N processes / (N x samples/s with one), from the
jobs' own `timings.samples_per_s` (training only). Weak scaling: every rank keeps the
one-process job's batch, so the DDP job's global batch is N times larger, as when one
adds GPUs. On CPU (`make bench`, gloo) both jobs have the whole machine: one process uses
all cores, each of N ranks a 1/N share; where the cores are shared with other work the
figure is noisy, and with few cores the all-reduce weighs more than on a large machine.
benchmarks/gpu.sh runs it on CUDA (NCCL, one rank per GPU) with TAAS_BENCH_DEVICE=cuda and
TAAS_BENCH_PROCESSES; with one process it reports the one-GPU figure and no efficiency.
"""

import os
import statistics
from typing import Any

from benchmarks.service import DEVICE, running

RUNS = 3
BATCH_PER_RANK = 128


def job(dataset_id: str, processes: int, device: str, epochs: int, width: int) -> dict[str, Any]:
    distributed = {"strategy": "ddp", "processes": processes} if processes > 1 else {}
    return {
        "dataset": dataset_id,
        # Wide enough that convolutions dominate a step, not the all-reduce or Python.
        "model": {"preset": "cnn", "width": width},
        "optimizer": {"name": "sgd", "lr": 0.01, "momentum": 0.9},
        "training": {
            "epochs": epochs,
            "batch_size": BATCH_PER_RANK * processes,
            "val_fraction": 0.0,
        },
        "checkpoint": {"every_epochs": 10_000, "keep": "last"},
        "resources": {"device": device},
        **({"distributed": distributed} if distributed else {}),
    }


def run() -> dict[str, Any]:
    device = DEVICE
    processes = int(os.environ.get("TAAS_BENCH_PROCESSES", "2"))
    # A GPU trains the 8,000 digits in milliseconds: more epochs and a wider net there.
    epochs, width = (1, 32) if device == "cpu" else (20, 128)
    single, parallel = [], []
    with running() as service:
        for _ in range(RUNS):
            one = service.run(job(service.dataset_id, 1, device, epochs, width))
            single.append(one["timings"]["samples_per_s"])
            if processes > 1:
                done = service.run(job(service.dataset_id, processes, device, epochs, width))
                assert done["result"]["world_size"] == processes
                parallel.append(done["timings"]["samples_per_s"])
    figures: dict[str, Any] = {
        "device": device,
        "processes": processes,
        "one_process_samples_per_s": statistics.median(single),
    }
    if processes == 1:
        figures["note"] = "one process only (one GPU): no scaling efficiency to report"
        return {f"cnn_w{width}_b{BATCH_PER_RANK}": figures}
    figures["ddp_samples_per_s"] = statistics.median(parallel)
    figures["efficiency"] = statistics.median(
        p / (processes * s) for p, s in zip(parallel, single, strict=True)
    )
    return {f"cnn_w{width}_b{BATCH_PER_RANK}": figures}
