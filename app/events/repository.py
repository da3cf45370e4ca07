"""SQL for the event log. Seqs are reserved on the job row, so they are contiguous per job."""

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.events.schemas import NewEvent
from app.jobs.status import JobStatus
from app.orm import Event, Job


def reserve_seqs(session: Session, job_id: str, count: int, *, fence: int | None) -> int | None:
    """Take the next `count` seqs; the returned value is the last. None: no job, or wrong fence.

    The UPDATE locks the job row until commit, so concurrent appends to one job queue up
    and their seqs never interleave or leave gaps.
    """
    statement = update(Job).where(Job.id == job_id).values(last_seq=Job.last_seq + count)
    if fence is not None:
        statement = statement.where(Job.fence == fence, Job.status == JobStatus.RUNNING)
    return session.execute(statement.returning(Job.last_seq)).scalar_one_or_none()


def insert(
    session: Session, job_id: str, first_seq: int, events: Sequence[NewEvent], now: datetime
) -> list[Event]:
    rows = [
        Event(job_id=job_id, seq=first_seq + i, type=e.type, time=e.time or now, data=e.data)
        for i, e in enumerate(events)
    ]
    session.add_all(rows)
    return rows


def after(
    session: Session, job_id: str, cursor: int, limit: int, types: Sequence[str] = ()
) -> list[Event]:
    statement = (
        select(Event)
        .where(Event.job_id == job_id, Event.seq > cursor)
        .order_by(Event.seq)
        .limit(limit)
    )
    if types:
        statement = statement.where(Event.type.in_(types))
    return list(session.scalars(statement))
