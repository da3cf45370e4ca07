from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypeAliasType

from app.jobs.schemas import JobResult, Timings
from app.jobs.status import JobStatus
from app.openapi import declared_as

EventType = Literal["status", "metric", "log", "checkpoint", "result"]


class NewEvent(BaseModel):
    """An event before it has a seq: what workers and services append."""

    type: EventType
    data: dict[str, Any]
    time: datetime | None = None


class EventOut(BaseModel):
    seq: int
    type: EventType
    time: datetime
    data: dict[str, Any]


class EventPage(BaseModel):
    items: list[Annotated[EventOut, declared_as("Event")]]
    # A string, like every page's cursor; it holds the last seq: pass it as `after`.
    next_cursor: str | None = Field(description="Pass as `after` for the next page.")


class MetricData(BaseModel):
    """A metric event's data: per step (train_loss) or per epoch (with validation)."""

    model_config = ConfigDict(extra="allow")

    scope: Literal["epoch", "step"] | None = None
    epoch: int | None = None
    step: int | None = None
    lr: float | None = None
    samples_per_s: float | None = None
    epoch_s: float | None = Field(None, description="Epoch metrics: the epoch's wall time.")
    train_loss: float | None = None
    val_loss: float | None = None
    val_accuracy: float | None = Field(None, description="Classification.")
    val_mae: float | None = Field(None, description="Regression.")


class MetricRow(BaseModel):
    """One metric event's data, flat: epoch, step and the metric names it carries."""

    seq: int
    time: datetime
    data: MetricData


class MetricPage(BaseModel):
    items: list[MetricRow]
    last_seq: int = Field(
        description="The newest seq this page covers: follow the stream with after= this."
    )


# What each type of event carries, for the documents: EventOut above is what the service
# handles (its data a plain dict); these say, by `type`, what that dict holds. Each keeps
# room for fields a newer worker adds.


class StatusData(BaseModel):
    model_config = ConfigDict(extra="allow")

    status: JobStatus
    reason: str | None
    attempt: int | None = Field(None, description="running: the attempt that started.")
    worker: str | None = Field(None, description="running: the worker that claimed it.")


class LogData(BaseModel):
    model_config = ConfigDict(extra="allow")

    level: str = Field(description="info, warning or error.")
    message: str


class CheckpointData(BaseModel):
    model_config = ConfigDict(extra="allow")

    kind: Literal["epoch", "stop", "final"]
    epoch: int | None
    step: int | None
    metrics: dict[str, float] = Field(description="The job's metrics when it was saved.")


class ResultData(BaseModel):
    model_config = ConfigDict(extra="allow")

    result: JobResult
    timings: Timings


class StatusEvent(BaseModel):
    seq: int
    type: Literal["status"]
    time: datetime
    data: StatusData


class MetricEvent(BaseModel):
    seq: int
    type: Literal["metric"]
    time: datetime
    data: MetricData


class LogEvent(BaseModel):
    seq: int
    type: Literal["log"]
    time: datetime
    data: LogData


class CheckpointEvent(BaseModel):
    seq: int
    type: Literal["checkpoint"]
    time: datetime
    data: CheckpointData


class ResultEvent(BaseModel):
    seq: int
    type: Literal["result"]
    time: datetime
    data: ResultData


Event = TypeAliasType(
    "Event",
    Annotated[
        StatusEvent | MetricEvent | LogEvent | CheckpointEvent | ResultEvent,
        Field(discriminator="type"),
    ],
)
