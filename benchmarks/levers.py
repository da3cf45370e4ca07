"""The speed levers pay what they pay by hand: bf16 autocast and torch.compile speed-ups
of jobs run through the service, against the same levers' speed-ups in the hand-written
loop.

The compute-bound case, the `cnn` preset at batch 128, on 8,192 digits (64 full batches:
no smaller last batch, so torch.compile sees one shape). Each run trains fp32, bf16 and
compiled, for the service and the loop, interleaved; a speed-up is the median over runs
of (lever samples/s / fp32 samples/s), and each lever's figure is the service's speed-up
over the loop's. The compile step itself is timed apart on both sides (`compile_s`).
On a CPU without native bf16 (no AMX) bf16 is a slowdown on both sides; the figure still
says whether the service passes the lever through at the loop's cost.
"""

import statistics
from typing import Any

from benchmarks.engine import hand_written, job
from benchmarks.service import running

RUNS = 3
SAMPLES = 8192
BATCH = 128
EPOCHS = 3
CNN = {"preset": "cnn", "width": 16}
LEVERS: dict[str, dict[str, Any]] = {
    "fp32": {"precision": "fp32", "compile": False},
    "bf16": {"precision": "bf16", "compile": False},
    "compile": {"precision": "fp32", "compile": True},
}


def run() -> dict[str, Any]:
    service_runs: dict[str, list[float]] = {lever: [] for lever in LEVERS}
    loop_runs: dict[str, list[float]] = {lever: [] for lever in LEVERS}
    compile_s: dict[str, list[float]] = {"service": [], "reference": []}
    with running(samples=SAMPLES) as service:
        for _ in range(RUNS):
            for lever, training in LEVERS.items():
                measured = hand_written(str(service.data_file), "cnn", BATCH, EPOCHS, **training)
                loop_runs[lever].append(measured["samples_per_s"])
                spec = job(service.dataset_id, CNN, BATCH, EPOCHS, **training)
                done = service.run(spec, subscribers=0)
                service_runs[lever].append(done["timings"]["samples_per_s"])
                if training["compile"]:
                    compile_s["reference"].append(measured["compile_s"])
                    compile_s["service"].append(done["timings"]["compile_s"])
    results: dict[str, Any] = {}
    for lever in ("bf16", "compile"):
        ours = statistics.median(
            s / f for s, f in zip(service_runs[lever], service_runs["fp32"], strict=True)
        )
        theirs = statistics.median(
            s / f for s, f in zip(loop_runs[lever], loop_runs["fp32"], strict=True)
        )
        results[lever] = {
            "service_speedup": ours,
            "reference_speedup": theirs,
            "ratio": ours / theirs,
        }
    results["compile_s"] = {side: statistics.median(times) for side, times in compile_s.items()}
    return results
