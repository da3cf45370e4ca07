"""One job's training, in its trainer process: payload in, events out.

The payload is the job's spec, where its data and checkpoints are, and when it was
claimed; every event goes to the supervising worker as one JSON message, and the worker
stores them. The trainer never touches the database: one that is killed leaves nothing
half-written, and the supervisor alone decides what the job's end was.

This module imports torch; the worker's fork server preloads it (worker/trainer/entry.py).
"""

import json
import signal
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from app.ids import new_id
from app.jobs.protocol import (
    STOP_SIGNAL,
    CheckpointFiles,
    Fault,
    TrainerEvent,
    TrainerFailed,
    TrainerPayload,
    TrainerResult,
)
from app.spec import SyntheticData
from app.storage import Storage
from worker.trainer import checkpoints, data, distributed
from worker.trainer.checkpoints import WarmStart
from worker.trainer.devices import pick_device
from worker.trainer.distributed import World
from worker.trainer.loop import Emit, Trainer
from worker.trainer.stopping import Diverged, Stopped, StopRequest

# Words of torch's messages for tensors that do not fit together.
SHAPE_WORDS = ("shape", "size mismatch", "must match the size", "dimension")
# A failed host allocation is a plain RuntimeError, not torch.OutOfMemoryError (CUDA only).
CPU_ALLOCATION_WORDS = ("DefaultCPUAllocator: can't allocate memory",)


def fault_of(error: Exception) -> Fault:
    """Whose fault an exception in the trainer is (app/jobs/protocol.py's kinds)."""
    if isinstance(error, Diverged):
        return Fault.DIVERGED
    if isinstance(error, torch.OutOfMemoryError | MemoryError) or (
        isinstance(error, RuntimeError) and any(w in str(error) for w in CPU_ALLOCATION_WORDS)
    ):
        return Fault.OUT_OF_MEMORY
    if isinstance(error, RuntimeError) and any(w in str(error) for w in SHAPE_WORDS):
        return Fault.SHAPE_ERROR
    # A failing disk or file system is the machine's, not the job's.
    if isinstance(error, OSError):
        return Fault.INFRASTRUCTURE
    return Fault.JOB_ERROR


class Events:
    """Each event as one JSON message to the supervisor."""

    def __init__(self, send: Callable[[bytes], None]) -> None:
        self._send = send

    def __call__(self, type_: str, payload: dict[str, Any]) -> None:
        message = TrainerEvent.model_validate({"type": type_, "time": time.time(), "data": payload})
        self._send(json.dumps(message.model_dump(), allow_nan=False).encode())


@dataclass(frozen=True)
class DirectoryStore:
    """Checkpoints of one job under `artifacts/checkpoint_dir/<id>/`."""

    artifacts: Path
    checkpoint_dir: str

    def save(self, weights: dict[str, Any], state: dict[str, Any]) -> CheckpointFiles:
        checkpoint_id = new_id("ckpt")
        relative = f"{self.checkpoint_dir}/{checkpoint_id}"
        record = checkpoints.write(Storage(self.artifacts), relative, weights, state)
        return CheckpointFiles(id=checkpoint_id, path=relative, **record)


def starting_point(payload: TrainerPayload) -> tuple[WarmStart | None, dict[str, Any] | None]:
    """The weights to start from (a warm start, or a resumed checkpoint) and, to resume,
    the training state; both files' hashes are checked against the database's record."""
    start = payload.start
    if start is None:
        return None, None
    directory = Path(payload.artifacts_dir) / start.path
    weights = checkpoints.read_weights(directory, start.sha256)
    warm = WarmStart({n: weights[n] for n in start.load}, start.freeze)
    if start.state_sha256 is None:
        return warm, None
    return warm, checkpoints.read_state(directory, start.state_sha256)


def probed_message(trainer: Trainer) -> str:
    """What the `auto` levers chose, and from what: users should see why."""
    chosen = ", ".join(f"{lever} {trainer.settings[lever]}" for lever in trainer.probed)
    return f"measured on this worker in {trainer.clock.probe_s:.2f} s: {chosen}"


def train(payload: TrainerPayload, send: Callable[[bytes], None]) -> int:
    """Train the payload's job, in this process or in its DDP ranks; the exit status."""
    emit = Events(send)
    stop = StopRequest()
    # The supervisor's "checkpoint, then stop" (worker shutdown, cancel). Until the loop
    # runs there is nothing to save, and the loop checks the request at every step.
    signal.signal(STOP_SIGNAL, lambda *_: setattr(stop, "requested", True))
    try:
        spec = payload.spec  # parsed once, by the claim; it crossed the fork as a model
        if spec.distributed.world_size > 1:
            distributed.launch(payload, emit, fit)
        else:
            fit(payload, emit, World(pick_device(spec.resources.device)), stop)
    except Stopped as stopped:
        emit("log", {"level": "info", "message": str(stopped)})
    except Exception as error:
        failed = TrainerFailed(
            message=f"{type(error).__name__}: {error}",
            fault=fault_of(error),
            traceback=traceback.format_exc(),
        )
        emit("error", failed.model_dump())
        return 1
    return 0


def fit(payload: TrainerPayload, emit: Emit, world: World, stop: StopRequest | None = None) -> None:
    """Train the job as `world`'s rank, to its result event; raises on the job's failure."""
    spec = payload.spec
    if spec.resources.threads is not None:
        torch.set_num_threads(spec.resources.threads)  # per rank, in a DDP job
    device = world.device
    if isinstance(spec.dataset, SyntheticData):
        x, y = data.synthetic_arrays(spec.dataset)
    else:
        assert payload.dataset_path is not None  # a stored dataset's path, checked by app
        x, y = data.stored_arrays(Path(payload.dataset_path))
    training = spec.training
    val_path = payload.val_dataset_path
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
    warm_start, resume = starting_point(payload)
    trainer = Trainer(
        spec,
        splits,
        device,
        emit,
        step_metric_interval_s=payload.step_metric_interval_s,
        flops_per_sample=payload.flops_per_sample,
        reported_epoch=payload.reported_epoch,
        warm_start=warm_start,
        resume=resume,
        # Rank 0 alone writes checkpoints: the weights are the same on every rank.
        checkpoints=(
            DirectoryStore(Path(payload.artifacts_dir), payload.checkpoint_dir)
            if world.leader
            else None
        ),
        world=world,
        stop=stop,
    )
    if trainer.probed:
        emit("log", {"level": "info", "message": probed_message(trainer), **trainer.probed})
    if resume is not None:
        message = f"resumed after epoch {resume['epoch']} (step {resume['step']})"
        emit("log", {"level": "info", "message": message})
    elif warm_start is not None:
        assert payload.start is not None
        loaded, frozen = len(warm_start.weights), warm_start.freeze
        message = f"warm start from {payload.start.checkpoint}: {loaded} tensors loaded" + (
            f", frozen {', '.join(frozen)}" if frozen else ""
        )
        emit("log", {"level": "info", "message": message, "warm_start": payload.warm_start})
    result = trainer.run()
    ended = TrainerResult(result=result, timings=trainer.timings(payload.claimed_at))
    emit("result", ended.model_dump())
