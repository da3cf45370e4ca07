from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.jobs.status import JobStatus
from app.orm.base import Base, JobStatusColumn, utcnow


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_created_at_id", "created_at", "id"),
        Index("ix_jobs_status_created_at", "status", "created_at"),
        Index("ix_jobs_tenant_status", "tenant", "status"),
        # Concurrent submits with one Idempotency-Key: the database lets exactly one in.
        UniqueConstraint("tenant", "idempotency_key"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[JobStatus] = mapped_column(JobStatusColumn())
    reason: Mapped[str | None] = mapped_column(String(500))
    spec: Mapped[dict[str, Any]]
    dataset_id: Mapped[str | None] = mapped_column(ForeignKey("datasets.id"))
    priority: Mapped[int] = mapped_column(default=0)
    # What the job needs: its doorbell goes to the queue of workers that have it.
    device: Mapped[str] = mapped_column(String(16), default="auto")
    params: Mapped[int] = mapped_column(BigInteger)
    flops_per_sample: Mapped[int] = mapped_column(BigInteger)
    attempt: Mapped[int] = mapped_column(default=0)
    # Hand-backs caused by infrastructure failures, counted against `max_restarts`; a
    # graceful hand-back (the worker shutting down) is not one.
    restarts: Mapped[int] = mapped_column(default=0)
    # The claim's fencing token: every write a worker makes about the job names it, so a
    # worker that lost its claim cannot write.
    fence: Mapped[int] = mapped_column(default=0)
    worker: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None]
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    # The last event's seq: appends reserve seqs by incrementing it, so seq is contiguous.
    last_seq: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    dispatched_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    result: Mapped[dict[str, Any] | None]
    # What a warm start loaded, skipped and initialised afresh (decided at submit).
    warm_start: Mapped[dict[str, Any] | None]
    timings: Mapped[dict[str, Any] | None]
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    # sha256 of the submitted spec: the same key with another body is refused.
    request_sha256: Mapped[str | None] = mapped_column(String(64))

    tag_rows: Mapped[list["JobTag"]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="JobTag.position"
    )

    @property
    def tags(self) -> list[str]:
        return [row.tag for row in self.tag_rows]


class JobTag(Base):
    """One row per tag, so `GET /v1/jobs?tag=` is an indexed join on any database."""

    __tablename__ = "job_tags"
    __table_args__ = (Index("ix_job_tags_tag_job_id", "tag", "job_id"),)

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int]
