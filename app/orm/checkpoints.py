from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.orm.base import Base, utcnow


class Checkpoint(Base):
    """Weights in a safetensors file: saved by a job, or uploaded by a user.

    A job's checkpoints also have a trainer state file (optimizer, scheduler, RNG) that
    only the service writes and reads; both files' sha256 are checked before a resume.
    """

    __tablename__ = "checkpoints"
    __table_args__ = (Index("ix_checkpoints_job_id_epoch", "job_id", "epoch"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Uploaded weights belong to no job; a deleted job's checkpoints go with it.
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))  # "epoch", "stop", "final" or "upload"
    epoch: Mapped[int | None]
    step: Mapped[int | None]
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # {name: {"dtype": "F32", "shape": [..]}}, read from the safetensors header.
    tensors: Mapped[dict[str, Any]] = mapped_column(JSON)
    bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    # Relative to the artifacts directory: weights.safetensors, and state.pt for jobs'.
    path: Mapped[str] = mapped_column(String(500))
    state_sha256: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
