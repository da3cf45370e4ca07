"""SQL for sweeps: pages, the advancing turn, and the jobs behind a sweep's trials."""

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, or_, select, update
from sqlalchemy.orm import Session

from app.orm import Job, JobTag, Sweep, Trial


def get(session: Session, sweep_id: str) -> Sweep | None:
    return session.get(Sweep, sweep_id)


def add(session: Session, sweep: Sweep) -> None:
    session.add(sweep)


def page(session: Session, *, tenant: str, limit: int) -> list[Sweep]:
    statement = (
        select(Sweep)
        .where(Sweep.tenant == tenant)
        .order_by(Sweep.created_at.desc(), Sweep.id.desc())
        .limit(limit)
    )
    return list(session.scalars(statement))


def running(session: Session, limit: int) -> list[str]:
    statement = select(Sweep.id).where(Sweep.status == "running").limit(limit)
    return list(session.scalars(statement))


def sweep_of_job(session: Session, job_id: str) -> str | None:
    return session.scalar(select(Trial.sweep_id).where(Trial.job_id == job_id))


def jobs(session: Session, job_ids: Iterable[str]) -> dict[str, Job]:
    wanted = list(job_ids)
    if not wanted:
        return {}
    return {job.id: job for job in session.scalars(select(Job).where(Job.id.in_(wanted)))}


def open_tagged(session: Session, tag: str) -> list[str]:
    """Queued or running jobs carrying `tag`."""
    statement = select(Job.id).where(
        Job.tag_rows.any(JobTag.tag == tag), Job.status.in_(("queued", "running"))
    )
    return list(session.scalars(statement))


def take_turn(session: Session, sweep_id: str, now: datetime, until: datetime) -> bool:
    """Compare-and-set: this caller advances the running sweep unless another one is."""
    statement = (
        update(Sweep)
        .where(
            Sweep.id == sweep_id,
            Sweep.status == "running",
            or_(Sweep.advancing_until.is_(None), Sweep.advancing_until < now),
        )
        .values(advancing_until=until)
        .execution_options(synchronize_session=False)
    )
    result: CursorResult[Any] = session.execute(statement)  # type: ignore[assignment]
    return result.rowcount == 1


def end_turn(session: Session, sweep_id: str) -> None:
    session.execute(
        update(Sweep)
        .where(Sweep.id == sweep_id)
        .values(advancing_until=None)
        .execution_options(synchronize_session=False)
    )
