from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.orm.base import Base, utcnow


class Sweep(Base):
    """A job fanned out into trials; its state advances as the trials' jobs end."""

    __tablename__ = "sweeps"
    __table_args__ = (
        Index("ix_sweeps_tenant_created_at", "tenant", "created_at"),
        Index("ix_sweeps_status", "status"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(500))
    # The request as the client sent it (SweepSpec JSON without defaults filled in), so
    # trials copy the base spec exactly and the sweep parses again as it did at submit.
    spec: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    # One advance at a time: whoever sets this (compare-and-set) advances until then.
    advancing_until: Mapped[datetime | None]

    trials: Mapped[list["Trial"]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="Trial.position"
    )


class Trial(Base):
    """One configuration of a sweep: the jobs it ran (one per rung) and where it stands.

    state: pending (not started), running (its job is open), waiting (finished a rung,
    not yet promoted), promoted (will continue at the next rung), done (reached the target
    or its last rung), stopped (cut at a rung), failed, cancelled.
    """

    __tablename__ = "sweep_trials"

    sweep_id: Mapped[str] = mapped_column(
        ForeignKey("sweeps.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(primary_key=True)
    config: Mapped[dict[str, Any]]
    state: Mapped[str] = mapped_column(String(16), default="pending")
    rung: Mapped[int] = mapped_column(default=0)
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    job_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    reason: Mapped[str | None] = mapped_column(String(500))
