"""The SQL of gang slots."""

from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from app.orm import Event, GangSlot


def replace(session: Session, slots: list[GangSlot]) -> None:
    """The job's slots become `slots` (an earlier attempt's go)."""
    session.execute(delete(GangSlot).where(GangSlot.job_id == slots[0].job_id))
    session.add_all(slots)


def open_slots(session: Session, job_id: str, fence: int) -> list[GangSlot]:
    statement = (
        select(GangSlot)
        .where(GangSlot.job_id == job_id, GangSlot.fence == fence, GangSlot.worker.is_(None))
        .order_by(GangSlot.node)
    )
    return list(session.scalars(statement))


def take(session: Session, slot: GangSlot, worker: str, now: datetime) -> bool:
    """Claim an open slot by compare-and-set; False when another worker was first."""
    statement = (
        update(GangSlot)
        .where(
            GangSlot.job_id == slot.job_id,
            GangSlot.node == slot.node,
            GangSlot.fence == slot.fence,
            GangSlot.worker.is_(None),
        )
        .values(worker=worker, joined_at=now)
        .execution_options(synchronize_session=False)
    )
    return session.execute(statement).rowcount == 1  # type: ignore[attr-defined, no-any-return]


def joined(session: Session, job_id: str, fence: int) -> int:
    statement = select(func.count()).where(
        GangSlot.job_id == job_id, GangSlot.fence == fence, GangSlot.worker.is_not(None)
    )
    return int(session.scalar(statement) or 0)


def leader(session: Session, job_id: str, fence: int) -> GangSlot | None:
    statement = select(GangSlot).where(
        GangSlot.job_id == job_id, GangSlot.fence == fence, GangSlot.node == 0
    )
    return session.scalars(statement).one_or_none()


def remove(session: Session, job_id: str) -> None:
    session.execute(delete(GangSlot).where(GangSlot.job_id == job_id))


def requeued_for(session: Session, job_id: str, reason: str) -> int:
    """How often the job went back to the queue for `reason` (a job has few status events)."""
    statement = select(Event.data).where(Event.job_id == job_id, Event.type == "status")
    return sum(
        1
        for data in session.scalars(statement)
        if data.get("status") == "queued" and data.get("reason") == reason
    )
