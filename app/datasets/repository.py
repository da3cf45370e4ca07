from sqlalchemy import select
from sqlalchemy.orm import Session

from app.orm import Dataset


def get(session: Session, dataset_id: str) -> Dataset | None:
    return session.get(Dataset, dataset_id)


def page(session: Session, *, after: str | None, limit: int) -> list[Dataset]:
    """Newest first; ids are time-ordered, so the cursor is the last id of the previous page."""
    statement = select(Dataset).order_by(Dataset.id.desc()).limit(limit)
    if after:
        statement = statement.where(Dataset.id < after)
    return list(session.scalars(statement))
