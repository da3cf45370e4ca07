"""SQL for jobs: inserts, pages, and the compare-and-set updates behind every transition."""

import base64
import binascii
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from app.errors import InvalidCursor
from app.jobs.status import OPEN, JobStatus
from app.orm import Job, JobTag
from app.spec.schemas import ID_PATTERN

ID_RE = re.compile(ID_PATTERN)


def get(session: Session, job_id: str) -> Job | None:
    return session.get(Job, job_id)


def add(session: Session, job: Job, tags: Sequence[str]) -> None:
    job.tag_rows = [JobTag(tag=tag, position=i) for i, tag in enumerate(dict.fromkeys(tags))]
    session.add(job)


def encode_cursor(job: Job) -> str:
    raw = f"{job.created_at.isoformat()}|{job.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, job_id = raw.split("|", 1)
        when = datetime.fromisoformat(created)
        if when.tzinfo is None or not ID_RE.fullmatch(job_id):
            raise ValueError("not a cursor")
        # Normalised to UTC here, so an out-of-range time fails as a bad cursor, not in SQL.
        return when.astimezone(UTC), job_id
    except (binascii.Error, UnicodeDecodeError, ValueError, OverflowError) as error:
        raise InvalidCursor("cursor is not one this API handed out") from error


def page(
    session: Session,
    *,
    tenant: str,
    status: JobStatus | None,
    tag: str | None,
    cursor: str | None,
    limit: int,
) -> list[Job]:
    """The tenant's jobs newest first; the cursor is the last job of the previous page."""
    statement = (
        select(Job)
        .where(Job.tenant == tenant)
        .order_by(Job.created_at.desc(), Job.id.desc())
        .limit(limit)
    )
    if status:
        statement = statement.where(Job.status == status)
    if tag:
        statement = statement.where(Job.tag_rows.any(JobTag.tag == tag))
    if cursor:
        created, job_id = decode_cursor(cursor)
        statement = statement.where(
            or_(Job.created_at < created, and_(Job.created_at == created, Job.id < job_id))
        )
    return list(session.scalars(statement))


def by_ids(session: Session, job_ids: Iterable[str]) -> dict[str, Job]:
    """The jobs of these ids that exist, by id."""
    wanted = list(job_ids)
    if not wanted:
        return {}
    return {job.id: job for job in session.scalars(select(Job).where(Job.id.in_(wanted)))}


def open_tagged(session: Session, tag: str) -> list[str]:
    """Queued or running jobs carrying `tag`."""
    statement = select(Job.id).where(Job.tag_rows.any(JobTag.tag == tag), Job.status.in_(OPEN))
    return list(session.scalars(statement))


def count(session: Session, *, tenant: str, status: JobStatus) -> int:
    statement = select(func.count()).where(Job.tenant == tenant, Job.status == status)
    return session.scalar(statement) or 0


def count_by_status(session: Session) -> dict[JobStatus, int]:
    """How many jobs are in each status, over all tenants (statuses with none are absent)."""
    statement = select(Job.status, func.count()).group_by(Job.status)
    return {status: count for status, count in session.execute(statement).all()}


def by_idempotency_key(session: Session, tenant: str, key: str) -> Job | None:
    statement = select(Job).where(Job.tenant == tenant, Job.idempotency_key == key)
    return session.scalars(statement).one_or_none()


def release_idempotency_key(session: Session, job_id: str) -> None:
    """An expired key goes from its job, so the unique constraint lets a new job take it."""
    session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(idempotency_key=None)
        .execution_options(synchronize_session=False)
    )


def compare_and_set(
    session: Session, job_id: str, expect: dict[str, Any], values: dict[str, Any]
) -> Job | None:
    """Update the job only if every `expect` column still holds; the updated job, else None."""
    conditions = [getattr(Job, column) == value for column, value in expect.items()]
    statement = (
        update(Job)
        .where(Job.id == job_id, *conditions)
        .values(**values)
        .returning(Job)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    return session.execute(statement).scalar_one_or_none()


def expired_leases(session: Session, now: datetime, limit: int) -> list[Job]:
    statement = (
        select(Job)
        .where(Job.status == JobStatus.RUNNING, Job.lease_expires_at < now)
        .order_by(Job.lease_expires_at)
        .limit(limit)
    )
    return list(session.scalars(statement))


def undispatched(session: Session, before: datetime, limit: int) -> list[tuple[str, str]]:
    """Queued jobs whose doorbell is older than `before` or was never rung: (id, device)."""
    statement = (
        select(Job.id, Job.device)
        .where(
            Job.status == JobStatus.QUEUED,
            or_(Job.dispatched_at.is_(None), Job.dispatched_at < before),
        )
        .order_by(Job.priority.desc(), Job.created_at)
        .limit(limit)
    )
    return [(job_id, device) for job_id, device in session.execute(statement)]
