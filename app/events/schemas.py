from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

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
    next_cursor: int | None


class MetricRow(BaseModel):
    """One metric event's data, flat: epoch, step and the metric names it carries."""

    seq: int
    time: datetime
    data: dict[str, Any]


class MetricPage(BaseModel):
    items: list[MetricRow]
    last_seq: int = Field(
        description="The newest seq this page covers: follow the stream with after= this."
    )
