"""What supervising one attempt of a job came to, as the supervisor gathers it."""

from dataclasses import dataclass, field
from typing import Any

from app.events.schemas import NewEvent
from app.jobs.protocol import Fault


@dataclass
class Outcome:
    result: dict[str, Any] | None = None
    timings: dict[str, Any] | None = None
    error: str | None = None
    # Whose fault the error is; None for the job's own failures found before training
    # (a deleted dataset).
    fault: Fault | None = None
    cancelled: bool = False
    lost: bool = False
    # Why the trainer was asked to checkpoint and stop, once it was.
    stopped_for: str | None = None
    pending: list[NewEvent] = field(default_factory=list)
