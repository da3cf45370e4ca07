from sqlalchemy import select
from sqlalchemy.orm import Session

from app.orm import ApiKey


def get(session: Session, key_id: str) -> ApiKey | None:
    return session.get(ApiKey, key_id)


def by_digest(session: Session, digest: str) -> ApiKey | None:
    return session.scalars(select(ApiKey).where(ApiKey.digest == digest)).one_or_none()


def add(session: Session, key: ApiKey) -> None:
    session.add(key)


def page(session: Session, *, tenant: str | None, after: str | None, limit: int) -> list[ApiKey]:
    """Newest first (ids are time-ordered); all tenants' when `tenant` is None."""
    statement = select(ApiKey).order_by(ApiKey.id.desc()).limit(limit)
    if tenant is not None:
        statement = statement.where(ApiKey.tenant == tenant)
    if after:
        statement = statement.where(ApiKey.id < after)
    return list(session.scalars(statement))
