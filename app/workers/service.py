"""Worker heartbeats and the fleet as the API shows it."""

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from app.errors import SpecInvalid
from app.orm import Worker
from app.orm.base import utcnow
from app.workers import repository

# A worker silent for this many heartbeats is shown as gone, then forgotten.
ALIVE_HEARTBEATS = 3
FORGET_AFTER = timedelta(hours=1)


def heartbeat(
    *,
    session: Session,
    worker_id: str,
    hostname: str,
    device: str,
    job_id: str | None,
    started_at: datetime,
) -> None:
    """Record that a worker is alive and what it is doing."""
    now = utcnow()
    repository.upsert(
        session,
        Worker(
            id=worker_id,
            hostname=hostname,
            device=device,
            job_id=job_id,
            started_at=started_at,
            last_seen_at=now,
        ),
    )
    repository.forget_before(session, now - FORGET_AFTER)
    session.commit()


def fleet(*, session: Session, heartbeat_s: float) -> list[tuple[Worker, bool]]:
    """Workers seen in the last hour, each with whether it is still heartbeating."""
    now = utcnow()
    alive_after = now - timedelta(seconds=heartbeat_s * ALIVE_HEARTBEATS)
    workers = repository.seen_since(session, now - FORGET_AFTER)
    return [(worker, worker.last_seen_at >= alive_after) for worker in workers]


def check_fleet_fits(*, session: Session, nodes: int, device: str) -> None:
    """A multi-worker job needs `nodes` workers of its device at once: refuse it at submit
    when the fleet has never had that many (it would wait for a gang for ever)."""
    if nodes <= 1:
        return
    registered = repository.count(session, None if device == "auto" else device)
    if nodes > registered:
        kind = "" if device == "auto" else f"{device} "
        raise SpecInvalid.at(
            "distributed.nodes",
            f"needs {nodes} {kind}workers at once, but the fleet has registered {registered}:"
            " start more workers (taas worker) or lower distributed.nodes",
        )
