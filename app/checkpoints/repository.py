from sqlalchemy import select
from sqlalchemy.orm import Session

from app.orm import Checkpoint


def get(session: Session, checkpoint_id: str) -> Checkpoint | None:
    return session.get(Checkpoint, checkpoint_id)


def page(
    session: Session, *, tenant: str, job_id: str | None, after: str | None, limit: int
) -> list[Checkpoint]:
    """Newest first; ids are time-ordered, so the cursor is the last id of the previous page."""
    statement = (
        select(Checkpoint)
        .where(Checkpoint.tenant == tenant)
        .order_by(Checkpoint.id.desc())
        .limit(limit)
    )
    if job_id is not None:
        statement = statement.where(Checkpoint.job_id == job_id)
    if after:
        statement = statement.where(Checkpoint.id < after)
    return list(session.scalars(statement))


def for_job(session: Session, job_id: str) -> list[Checkpoint]:
    """A job's checkpoints by epoch (a final one without an epoch last), then creation."""
    statement = (
        select(Checkpoint)
        .where(Checkpoint.job_id == job_id)
        .order_by(Checkpoint.epoch.asc().nulls_last(), Checkpoint.created_at, Checkpoint.id)
    )
    return list(session.scalars(statement))


def add(session: Session, checkpoint: Checkpoint) -> None:
    session.add(checkpoint)
