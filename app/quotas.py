"""Per-tenant storage quota: the bytes of a tenant's datasets and checkpoints together.

Checked before anything of an upload is stored, against TAAS_TENANT_STORAGE_BYTES (there
is no per-tenant limit column: tenants exist only as names on keys). Checkpoints its jobs
save count towards the usage; a running job is not stopped for them, its next upload is.
"""

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import AppError
from app.orm import Checkpoint, Dataset


class StorageQuotaExceeded(AppError):
    status_code = 413
    code = "storage_quota_exceeded"


def used_bytes(session: Session, tenant: str) -> int:
    """Bytes of the tenant's stored datasets and checkpoints, as their rows record them."""
    datasets = select(func.coalesce(func.sum(Dataset.bytes), 0)).where(Dataset.tenant == tenant)
    checkpoints = select(func.coalesce(func.sum(Checkpoint.bytes), 0)).where(
        Checkpoint.tenant == tenant
    )
    return int(session.scalar(datasets) or 0) + int(session.scalar(checkpoints) or 0)


def admit(session: Session, *, tenant: str, adding: int, quota: int) -> None:
    """StorageQuotaExceeded (413) naming the figures when `adding` bytes would pass the quota."""
    used = used_bytes(session, tenant)
    # End the read before the upload is written: on SQLite every transaction holds the
    # write lock (BEGIN IMMEDIATE), which a long write must not keep from other writers.
    session.rollback()
    if used + adding > quota:
        raise StorageQuotaExceeded(
            f"tenant {tenant!r} stores {used} bytes; {adding} more would pass its storage "
            f"quota of {quota} bytes (TAAS_TENANT_STORAGE_BYTES); delete datasets or "
            "checkpoints to make room"
        )
