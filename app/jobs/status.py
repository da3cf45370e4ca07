"""The words of a job's life, defined once: the API, the database, events, metrics and
sweeps all use these (a StrEnum, so stored and JSON values are the plain words)."""

from enum import StrEnum


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


# A job in one of these never moves again.
TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})
# A job in one of these still holds a place in the queue or on a worker.
OPEN = (JobStatus.QUEUED, JobStatus.RUNNING)
