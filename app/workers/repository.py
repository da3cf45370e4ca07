from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.orm import Worker


def upsert(session: Session, worker: Worker) -> None:
    session.merge(worker)


def seen_since(session: Session, since: datetime) -> list[Worker]:
    statement = select(Worker).where(Worker.last_seen_at >= since).order_by(Worker.id)
    return list(session.scalars(statement))


def forget_before(session: Session, before: datetime) -> None:
    session.execute(delete(Worker).where(Worker.last_seen_at < before))
