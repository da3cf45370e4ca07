"""Engine throughput and start-up: jobs run through the service against a hand-written loop.

Both train the same net on the same 8,000 samples with the same optimizer, batch size
and threads, each in its own process; runs alternate (reference, service, reference, ...)
and the figure is the median ratio of training samples/s (evaluation excluded; the
service's figure is its job's own `timings.samples_per_s`). Start-up is the jobs' own
`timings.startup_s`, claim to first training step.
"""

import json
import statistics
import subprocess
import sys
from typing import Any

from benchmarks.service import DEVICE, ROOT, running

RUNS = 5
SEED_MLP = {
    "layers": [
        {"type": "flatten"},
        {"type": "linear", "out_features": 10, "activation": "relu"},
        {"type": "linear", "out_features": 10, "activation": "relu"},
        {"type": "linear", "out_features": 10},
    ]
}
CASES = {
    # name: (reference net, service model, batch size, epochs per run)
    "mlp_b32": ("mlp", SEED_MLP, 32, 5),
    "cnn_b128": ("cnn", {"preset": "cnn", "width": 16}, 128, 2),
}


def job(
    dataset_id: str, model: dict[str, Any], batch: int, epochs: int, **training: Any
) -> dict[str, Any]:
    return {
        "dataset": dataset_id,
        "model": model,
        "optimizer": {"name": "sgd", "lr": 0.01, "momentum": 0.9},
        # The reference loop standardises each feature and validates nothing: so does this.
        "training": {
            "epochs": epochs,
            "batch_size": batch,
            "val_fraction": 0.0,
            "normalize": "standard",
            **training,
        },
        "checkpoint": {"every_epochs": 10_000, "keep": "last"},
        "resources": {"device": DEVICE},
    }


def hand_written(
    data_file: str, net: str, batch: int, epochs: int, **config: Any
) -> dict[str, float]:
    """The hand-written loop's figures, from a fresh process of its own."""
    config = {
        "data": data_file,
        "net": net,
        "batch_size": batch,
        "epochs": epochs,
        "device": DEVICE,
        **config,
    }
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.reference", json.dumps(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    figures: dict[str, float] = json.loads(out.stdout)
    return figures


def run() -> dict[str, Any]:
    results: dict[str, Any] = {}
    startups: list[float] = []
    with running() as service:
        for name, (net, model, batch, epochs) in CASES.items():
            reference, ours, memory = [], [], []
            for _ in range(RUNS):
                measured = hand_written(str(service.data_file), net, batch, epochs)
                reference.append(measured["samples_per_s"])
                # Nobody follows the job: the hand-written loop has no observer either.
                done = service.run(job(service.dataset_id, model, batch, epochs), subscribers=0)
                ours.append(done["timings"]["samples_per_s"])
                memory.append(done["result"]["peak_memory_mb"] - measured["peak_memory_mb"])
                startups.append(done["timings"]["startup_s"])
            results[name] = {
                "reference_samples_per_s": statistics.median(reference),
                "service_samples_per_s": statistics.median(ours),
                "ratio": statistics.median(s / r for s, r in zip(ours, reference, strict=True)),
                # The trainer's peak resident memory (CPU) or tensors' peak (CUDA) minus
                # the loop's: the service's overhead, which should be a small constant.
                "extra_peak_memory_mb": statistics.median(memory),
            }
    results["startup_s"] = {"median": statistics.median(startups), "max": max(startups)}
    return results
