"""Every table of the service. Alembic's autogenerate and the migrations read Base.metadata."""

from app.orm.base import Base
from app.orm.checkpoints import Checkpoint
from app.orm.datasets import Dataset
from app.orm.events import Event
from app.orm.gangs import GangSlot
from app.orm.jobs import Job, JobTag
from app.orm.keys import ApiKey
from app.orm.sweeps import Sweep, Trial
from app.orm.workers import Worker

__all__ = [
    "ApiKey",
    "Base",
    "Checkpoint",
    "Dataset",
    "Event",
    "GangSlot",
    "Job",
    "JobTag",
    "Sweep",
    "Trial",
    "Worker",
]
