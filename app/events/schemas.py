from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

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
    items: list[EventOut]
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
