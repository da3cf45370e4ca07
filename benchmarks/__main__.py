"""`make bench`: run the benchmarks, print a table, write benchmarks/results/<name>.json."""

import json
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import dispatch

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, object]:
    import torch

    return {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


def main() -> None:
    figures = dispatch.run()
    record = {
        "name": "dispatch",
        "date": datetime.now(UTC).isoformat(),
        "machine": machine(),
        "figures": figures,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "dispatch.json").write_text(json.dumps(record, indent=2) + "\n")
    print("| measure | value |\n| --- | --- |")
    for key, value in figures.items():
        shown = f"{value * 1000:.2f} ms" if key.endswith("_s") else str(value)
        print(f"| {key.removesuffix('_s')} | {shown} |")


if __name__ == "__main__":
    main()
