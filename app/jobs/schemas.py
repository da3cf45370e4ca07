from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from app.jobs.status import JobStatus
from app.openapi import declared_as
from app.spec.base import MAX_EPOCHS

# A stored spec is a JobSpec as submitted and dumped; it is not validated again on every
# read, but it is declared as what it is, so clients get a typed spec.
StoredSpec = Annotated[dict[str, Any], declared_as("JobSpec")]


class JobResult(BaseModel):
    """What a finished job reached. Metrics are by name: train_loss, val_loss, val_accuracy
    (classification) or val_mae (regression)."""

    model_config = ConfigDict(extra="allow")

    final: dict[str, float] = Field(description="The last epoch's metrics, with epoch and step.")
    best: dict[str, float] = Field(description="The best epoch's metrics by the target's metric.")
    epochs: int
    steps: int
    stopped: str = Field(description="Why training stopped: epochs, target, cancelled, ...")
    settings: dict[str, Any] = Field(
        description="The levers as trained (batch_size, precision, compile, channels_last, "
        "threads), with `auto` resolved."
    )
    peak_memory_mb: float | None = None
    world_size: int | None = None


class WarmStartOut(BaseModel):
    """What a warm start loads from a checkpoint, by tensor name."""

    model_config = ConfigDict(extra="allow")

    checkpoint: str
    loaded: list[str]
    skipped: list[str]
    initialized: list[str]
    frozen: list[str]
    resume: bool = False


class Timings(BaseModel):
    """Where a job's time went, in seconds. Only finished jobs have every field."""

    queued_s: float | None = Field(None, description="Submit to claim by a worker.")
    startup_s: float | None = Field(None, description="Claim to the first training step.")
    train_s: float | None = Field(None, description="Forward, backward and optimizer steps.")
    eval_s: float | None = Field(None, description="Validation passes.")
    checkpoint_s: float | None = Field(None, description="Writing checkpoints.")
    compile_s: float | None = Field(
        None,
        description="torch.compile's first calls (training and evaluation), apart from train_s.",
    )
    probe_s: float | None = Field(
        None, description="Measuring `auto` batch size or precision before training."
    )
    total_s: float | None = Field(None, description="Submit to the end of the job.")
    samples_per_s: float | None = Field(None, description="Training samples / train_s.")
    epoch_s: list[float] = Field(default_factory=list, description="Wall time of each epoch.")
    flops_per_s: float | None = Field(
        None, description="Achieved training FLOP/s: 3 x forward FLOPs x samples / train_s."
    )
    time_to_target_s: float | None = Field(
        None,
        description="First training step to the evaluation that reached the target, when set "
        "and reached.",
    )


class JobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    status: JobStatus
    reason: str | None
    attempt: int
    restarts: int = Field(
        description="Times an infrastructure failure (lost worker, killed trainer) sent the "
        "job back to the queue; past the service's max_restarts it fails instead."
    )
    priority: int
    tags: list[str]
    dataset_id: str | None
    params: int = Field(description="Trainable parameters of the net.")
    flops_per_sample: int = Field(description="Forward FLOPs per sample.")
    spec: StoredSpec
    cancel_requested: bool
    worker: str | None
    last_seq: int = Field(description="The seq of the job's newest event.")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    result: JobResult | None = Field(description="Finished jobs: what they reached.")
    timings: Timings | None
    warm_start: WarmStartOut | None = Field(
        description="What the warm start loaded, skipped, initialised afresh and froze."
    )


class ResumeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(ge=1, le=MAX_EPOCHS, description="Epochs to train beyond the checkpoint.")


class JobPage(BaseModel):
    items: list[JobOut]
    next_cursor: str | None
