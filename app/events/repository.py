"""SQL for the event log. Seqs are reserved on the job row, so they are contiguous per job."""

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, or_, select, update
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


def metrics_downsampled(
    session: Session, job_id: str, cursor: int, max_points: int
) -> tuple[list[Event], int]:
    """A job's metric events after `cursor`, at most about `max_points` of them, and the
    newest seq they cover (where a live stream picks up).

    Epoch rows (few, carrying the validation metrics) are all kept. Step rows are cut into
    equal seq ranges, and each range keeps its lowest and its highest train_loss, so
    spikes survive the cut (min/max per bucket). All of it runs in the database: two
    aggregate queries and one window query over the job's primary-key range.
    """
    metric = (Event.job_id == job_id, Event.seq > cursor, Event.type == "metric")
    is_step = func.coalesce(Event.data["scope"].as_string(), "") == "step"
    total, newest = session.execute(select(func.count(), func.max(Event.seq)).where(*metric)).one()
    if total <= max_points:
        return after(session, job_id, cursor, max_points, ("metric",)), newest or cursor
    steps, first, last = session.execute(
        select(func.count(), func.min(Event.seq), func.max(Event.seq)).where(*metric, is_step)
    ).one()
    buckets = max(1, (max_points - (total - steps)) // 2)
    bucket = ((Event.seq - first) * buckets) // (last - first + 1)
    loss = Event.data["train_loss"].as_float()
    ranked = (
        select(
            Event.seq,
            func.row_number()
            .over(partition_by=bucket, order_by=(loss.asc(), Event.seq))
            .label("low"),
            func.row_number()
            .over(partition_by=bucket, order_by=(loss.desc(), Event.seq))
            .label("high"),
        )
        .where(*metric, is_step)
        .subquery()
    )
    kept = select(ranked.c.seq).where(or_(ranked.c.low == 1, ranked.c.high == 1))
    rows = session.scalars(
        select(Event).where(*metric, or_(~is_step, Event.seq.in_(kept))).order_by(Event.seq)
    )
    return list(rows), newest
