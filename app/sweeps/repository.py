"""SQL for sweeps: pages, the trial of a job, and the advancing turn (the jobs behind the
trials are the jobs repository's)."""

from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, or_, select, update
from sqlalchemy.orm import Session

from app.jobs.status import JobStatus
from app.orm import Sweep, Trial


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
    statement = select(Sweep.id).where(Sweep.status == JobStatus.RUNNING).limit(limit)
    return list(session.scalars(statement))


def sweep_of_job(session: Session, job_id: str) -> str | None:
    return session.scalar(select(Trial.sweep_id).where(Trial.job_id == job_id))


def take_turn(session: Session, sweep_id: str, now: datetime, until: datetime) -> bool:
    """Compare-and-set: this caller advances the running sweep unless another one is."""
    statement = (
        update(Sweep)
        .where(
            Sweep.id == sweep_id,
            Sweep.status == JobStatus.RUNNING,
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
