from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.orm.base import Base


class GangSlot(Base):
    """One node's place in a multi-worker DDP job: node 0 is the job's claimant, which
    publishes the rendezvous address; the others are claimed by the workers that join."""

    __tablename__ = "gang_slots"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    node: Mapped[int] = mapped_column(primary_key=True)
    # The leader's claim fence: a slot of an earlier attempt can never be joined.
    fence: Mapped[int]
    worker: Mapped[str | None] = mapped_column(String(200))
    address: Mapped[str | None] = mapped_column(String(300))
    joined_at: Mapped[datetime | None]
