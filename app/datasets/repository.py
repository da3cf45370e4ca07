from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from app.jobs.status import TERMINAL
from app.orm import Dataset, Job


def get(session: Session, dataset_id: str) -> Dataset | None:
    return session.get(Dataset, dataset_id)


def get_for_share(session: Session, dataset_id: str) -> Dataset | None:
    """The row, share-locked until commit, so a delete cannot slip in before a job on it
    is inserted (Postgres; SQLite serialises writers anyway)."""
    statement = select(Dataset).where(Dataset.id == dataset_id).with_for_update(key_share=True)
    return session.scalars(statement).one_or_none()


def get_for_update(session: Session, dataset_id: str) -> Dataset | None:
    """The row, locked until commit: a job inserted on it meanwhile waits, then sees it gone.

    SQLite ignores FOR UPDATE; its transactions begin IMMEDIATE, which serialises writers.
    """
    statement = select(Dataset).where(Dataset.id == dataset_id).with_for_update()
    return session.scalars(statement).first()


def page(session: Session, *, tenant: str, after: str | None, limit: int) -> list[Dataset]:
    """Newest first; ids are time-ordered, so the cursor is the last id of the previous page."""
    statement = (
        select(Dataset).where(Dataset.tenant == tenant).order_by(Dataset.id.desc()).limit(limit)
    )
    if after:
        statement = statement.where(Dataset.id < after)
    return list(session.scalars(statement))


def unfinished_job(session: Session, dataset_id: str) -> tuple[str, str] | None:
    """(id, status) of the oldest unfinished job that trains or validates on the dataset."""
    # A validation dataset is named only in the spec: no column, no foreign key.
    validates_on = Job.spec[("training", "val_dataset")].as_string()
    statement = (
        select(Job.id, Job.status)
        .where(
            or_(Job.dataset_id == dataset_id, validates_on == dataset_id),
            Job.status.not_in(TERMINAL),
        )
        .order_by(Job.created_at, Job.id)
        .limit(1)
    )
    row = session.execute(statement).first()
    return (row.id, row.status) if row is not None else None


def detach_jobs(session: Session, dataset_id: str) -> None:
    """Finished jobs outlive their dataset: the link goes, their spec still names its id."""
    session.execute(
        update(Job)
        .where(Job.dataset_id == dataset_id)
        .values(dataset_id=None)
        .execution_options(synchronize_session=False)
    )


def delete(session: Session, dataset: Dataset) -> None:
    session.delete(dataset)
