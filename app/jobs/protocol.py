"""The contract between a worker's supervisor and its trainer process, as typed models.

Everything that crosses the fork (the payload) or the events pipe (the trainer's messages,
the checkpoint it saved, its timings, why it failed) and the stop signal is defined here
once, so a renamed field fails mypy and the tests on both sides instead of at run time in
a child process. It lives in app (torch-free, worker-free) because app prepares the
payload and reads the checkpoint messages; the worker and the trainer import it.
"""

import signal
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from app.spec import JobSpec

# The supervisor's request to a trainer: save a checkpoint where you are, then exit.
STOP_SIGNAL = signal.SIGUSR1


class Fault(StrEnum):
    """Why a trainer failed, as the supervisor must know it: the job's own faults fail the
    job at once (running it again would fail the same way); the machine's send it back to
    the queue, to run again up to max_restarts times."""

    DIVERGED = "diverged"
    OUT_OF_MEMORY = "out_of_memory"
    SHAPE_ERROR = "shape_error"
    JOB_ERROR = "job_error"
    INFRASTRUCTURE = "infrastructure"
    # Named by the supervisor: the trainer died without saying why (killed, crashed).
    TRAINER_LOST = "trainer_lost"


# The job's own faults that fail it under their own name (not the exception's message).
NAMED_JOB_FAULTS = frozenset({Fault.DIVERGED, Fault.OUT_OF_MEMORY, Fault.SHAPE_ERROR})
# Faults of the machine: the job goes back to the queue.
MACHINE_FAULTS = frozenset({Fault.INFRASTRUCTURE, Fault.TRAINER_LOST})


class Message(BaseModel):
    """Frozen and strict about unknown fields: a misspelt key fails where it is written."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class StartPoint(Message):
    """Where a trainer starts from a checkpoint (paths relative to the artifacts)."""

    checkpoint: str
    path: str
    sha256: str
    # Set to resume: the training state's file hash (optimizer, RNG, epoch).
    state_sha256: str | None
    load: list[str]  # the tensors that load into the net
    freeze: list[str]  # parameter prefixes that do not train


class GangSeat(Message):
    """This worker's node of a multi-worker job, and where node 0 hosts the rendezvous."""

    node: int
    host: str
    port: int


class TrainerPayload(Message):
    """Everything a trainer needs, prepared by app in one call (jobs.service.payload)."""

    # Parsed once per attempt, by the claim; pickled across the fork as the model it is.
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    job_id: str
    attempt: int
    spec: JobSpec
    artifacts_dir: str
    checkpoint_dir: str  # relative to artifacts_dir
    start: StartPoint | None
    # The last epoch an earlier attempt reported: a resumed attempt reports only later ones.
    reported_epoch: int
    # The job's warm-start plan as submitted, shown in the trainer's log.
    warm_start: dict[str, Any] | None
    flops_per_sample: int | None
    dataset_path: str | None
    val_dataset_path: str | None
    claimed_at: float  # epoch seconds: the trainer's startup time counts from here
    step_metric_interval_s: float
    gang: GangSeat | None = None

    def joining(self, seat: GangSeat) -> "TrainerPayload":
        return self.model_copy(update={"gang": seat})


class CheckpointFiles(Message):
    """A checkpoint directory the trainer wrote: the database's record of its files."""

    id: str
    path: str  # relative to the artifacts
    tensors: dict[str, dict[str, Any]]  # name -> {"dtype", "shape"}
    bytes: int
    sha256: str
    state_sha256: str | None


# Saved after an epoch (per the job's policy), on a stop request, or at the end.
CheckpointKind = Literal["epoch", "stop", "final"]


class CheckpointSaved(CheckpointFiles):
    """The data of a `checkpoint` event: a checkpoint the trainer wrote, to record."""

    kind: CheckpointKind
    epoch: int
    step: int
    metrics: dict[str, float]


class Timings(Message):
    """The trainer's share of a job's timings; the supervisor adds queued_s and total_s."""

    startup_s: float
    train_s: float
    eval_s: float
    checkpoint_s: float
    compile_s: float
    probe_s: float
    samples_per_s: float | None
    epoch_s: list[float]
    time_to_target_s: float | None
    flops_per_s: float | None


class TrainerFailed(Message):
    """The data of an `error` message: the trainer's failure and whose fault it is."""

    message: str
    fault: Fault
    traceback: str


class TrainerResult(Message):
    """The data of a `result` message: the job's result and the trainer's timings."""

    result: dict[str, Any]
    timings: Timings


class TrainerEvent(Message):
    """One message on the events pipe: an event of the job, as the trainer saw it."""

    type: Literal["log", "metric", "checkpoint", "error", "result"]
    time: float  # epoch seconds
    data: dict[str, Any]
