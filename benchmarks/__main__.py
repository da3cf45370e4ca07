"""`make bench`: run the benchmarks, print a table, write benchmarks/results/<name>.json.

`python -m benchmarks [NAME ...]` runs only those named (`make chaos` runs `chaos`, which
the default leaves out). With TAAS_BENCH_DEVICE=cuda
(benchmarks/gpu.sh) jobs train on the GPU and results go to <name>-cuda.json.
"""

import json
import os
import platform
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import (
    accuracy,
    api,
    chaos,
    dashboard,
    dispatch,
    engine,
    levers,
    scaling,
    streaming,
    sweeps,
)
from benchmarks.service import DEVICE

RESULTS = Path(__file__).resolve().parent / "results"
# Not speed figures: `make chaos` runs the fault injection on its own.
# The dashboard's needs Chromium: `python -m benchmarks dashboard`.
SEPARATE = {"chaos", "dashboard"}
BENCHMARKS: dict[str, Callable[[], dict[str, Any]]] = {
    "engine": engine.run,
    "streaming": streaming.run,
    "dispatch": dispatch.run,
    "api": api.run,
    "accuracy": accuracy.run,
    "levers": levers.run,
    "scaling": scaling.run,
    "sweeps": sweeps.run,
    "chaos": chaos.run,
    "dashboard": dashboard.run,
}


def machine() -> dict[str, object]:
    import torch

    return {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


# A figure taken beside other work is not comparable with an idle one: every result says
# how busy the machine was (1-minute load average) when it started and when it ended.
IDLE_LOAD = 0.5


def load() -> float:
    return round(os.getloadavg()[0], 2)


def rows(prefix: str, figures: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for key, value in figures.items():
        if isinstance(value, dict):
            out += rows(f"{prefix}{key}.", value)
        elif key.endswith("_s") and not key.endswith("_per_s") and isinstance(value, float):
            out.append((f"{prefix}{key}", f"{value * 1000:.2f} ms"))
        elif isinstance(value, float):
            out.append((f"{prefix}{key}", f"{value:.3f}" if value < 100 else f"{value:,.0f}"))
        else:
            out.append((f"{prefix}{key}", str(value)))
    return out


def main(names: list[str]) -> None:
    RESULTS.mkdir(exist_ok=True)
    print("| benchmark | figure |\n| --- | --- |")
    for name in names or [name for name in BENCHMARKS if name not in SEPARATE]:
        load_at_start = load()
        figures = BENCHMARKS[name]()
        loads = {"start": load_at_start, "end": load()}
        record = {
            "name": name,
            "date": datetime.now(UTC).isoformat(),
            "machine": machine(),
            "load_average_1m": loads,
            "idle": loads["start"] < IDLE_LOAD,
            "figures": figures,
        }
        stem = name if DEVICE == "cpu" else f"{name}-{DEVICE}"
        (RESULTS / f"{stem}.json").write_text(json.dumps(record, indent=2) + "\n")
        for key, shown in rows(f"{name}.", figures):
            print(f"| {key} | {shown} |")


if __name__ == "__main__":
    main(sys.argv[1:])
