"""The trainer process: `python -m worker.trainer EVENTS_FD`, the job on stdin.

It reads one JSON payload (the job's spec, where its data is, when it was claimed),
trains, and writes one JSON line per event to EVENTS_FD for the supervising worker,
which stores them. It never touches the database: a trainer that is killed leaves
nothing half-written, and the supervisor alone decides what the job's end was.
"""

import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any, TextIO

from app.spec import JobSpec, SyntheticData
from worker.trainer import data


class Events:
    """JSON lines to the supervisor, one write per event (each well under PIPE_BUF)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def __call__(self, type_: str, payload: dict[str, Any]) -> None:
        line = json.dumps({"type": type_, "time": time.time(), "data": payload}, allow_nan=False)
        self._stream.write(line + "\n")
        self._stream.flush()


def main(events_fd: int) -> int:
    emit = Events(os.fdopen(events_fd, "w", buffering=1))
    payload = json.loads(sys.stdin.read())
    try:
        # torch is imported here, after the payload, so an import failure is reported too.
        from worker.trainer.loop import Trainer, pick_device

        spec = JobSpec.model_validate(payload["spec"])
        device = pick_device(spec.resources.device)
        if isinstance(spec.dataset, SyntheticData):
            x, y = data.synthetic_arrays(spec.dataset)
        else:
            x, y = data.stored_arrays(Path(payload["dataset_path"]))
        training = spec.training
        val_path = payload.get("val_dataset_path")
        splits = data.prepare(
            x,
            y,
            val_fraction=training.split_fraction,
            seed=training.seed,
            normalize=training.normalize,
            device=device,
            val=data.stored_arrays(Path(val_path)) if val_path else None,
        )
        emit(
            "log",
            {"level": "info", "message": f"training on {device} with {len(splits.train)} samples"},
        )
        trainer = Trainer(
            spec,
            splits,
            device,
            emit,
            step_metric_interval_s=payload["step_metric_interval_s"],
            flops_per_sample=payload.get("flops_per_sample"),
        )
        result = trainer.run()
        emit("result", {"result": result, "timings": trainer.timings(payload["claimed_at"])})
    except Exception as error:
        emit(
            "error",
            {"message": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()},
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1])))
