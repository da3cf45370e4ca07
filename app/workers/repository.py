from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.orm import Worker


def upsert(session: Session, worker: Worker) -> None:
    session.merge(worker)


def seen_since(session: Session, since: datetime) -> list[Worker]:
    statement = select(Worker).where(Worker.last_seen_at >= since).order_by(Worker.id)
    return list(session.scalars(statement))


def forget_before(session: Session, before: datetime) -> None:
    session.execute(delete(Worker).where(Worker.last_seen_at < before))


def count(session: Session, device: str | None) -> int:
    """Workers the table knows (seen within the forget window), of one device or all."""
    statement = select(func.count()).select_from(Worker)
    if device is not None:
        statement = statement.where(Worker.device == device)
    return int(session.scalar(statement) or 0)
