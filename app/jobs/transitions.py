"""Every move of a job's status, in one place: claim, renew, record, finish, hand back,
release, reap, disband, cancel, and the reconciler's re-dispatch.

Every transition is a compare-and-set on the job row plus a `status` event in the same
transaction; services commit first and only then ring the broker or notify followers,
so whoever reacts always finds the committed row. A worker's writes name its claim's
fence, so a worker that lost its claim cannot write.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from app.broker import Dispatcher
from app.checkpoints import service as checkpoints
from app.errors import JobNotFound
from app.events import service as events
from app.events.notify import Notifier
from app.events.schemas import NewEvent
from app.jobs import repository
from app.jobs.protocol import CheckpointSaved
from app.jobs.status import TERMINAL, JobStatus
from app.orm import Job
from app.orm.base import utcnow
from app.spec import JobSpec

logger = logging.getLogger(__name__)

# The reason of a job failed because infrastructure failures restarted it too often.
MAX_RESTARTS_REASON = "max_restarts"
# The reason of a running job taken back from a worker whose lease ran out.
WORKER_LOST = "worker_lost"
CANCELLED = "cancelled"


def status_event(status: JobStatus, reason: str, **extra: Any) -> NewEvent:
    return NewEvent(type="status", data={"status": status, "reason": reason, **extra})


def _fence_lost(claim: "Claim") -> events.FenceLost:
    return events.FenceLost(f"job {claim.job_id} is no longer held with fence {claim.fence}")


def _job(session: Session, job_id: str) -> Job:
    job = repository.get(session, job_id)
    if job is None:
        raise JobNotFound(job_id)
    return job


def _move(
    session: Session,
    notifier: Notifier,
    job_id: str,
    expect: dict[str, Any],
    values: dict[str, Any],
    event: NewEvent,
    *,
    fence: int | None = None,
) -> Job | None:
    """The one shape of every transition: compare-and-set the row, append its `status`
    event (under `fence`, when given) in the same transaction, commit, then tell followers.
    None, rolled back, when the row no longer holds what `expect` says."""
    moved = repository.compare_and_set(session, job_id, expect, values)
    if moved is None:
        session.rollback()
        return None
    events.append(session, job_id, [event], fence=fence)
    session.commit()
    notifier.publish(job_id)
    return moved


def end_timings(
    job: Job, finished_at: datetime, trained: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A job's timings as it ends: the trainer's figures, plus time queued (submit to claim,
    or to the end for a job never claimed) and in total."""
    return {
        **(trained or job.timings or {}),
        "queued_s": ((job.started_at or finished_at) - job.created_at).total_seconds(),
        "total_s": (finished_at - job.created_at).total_seconds(),
    }


@dataclass(frozen=True)
class Claim:
    """A worker's hold on a running job: every write it makes names the fence."""

    job_id: str
    fence: int
    attempt: int
    claimed_at: datetime
    # Parsed here, once per attempt: the worker and its trainer use this model as it is.
    spec: JobSpec
    dataset_id: str | None
    flops_per_sample: int
    tenant: str

    @classmethod
    def of(cls, job: Job, claimed_at: datetime) -> "Claim":
        """The claim a running job's row describes (its current fence and attempt)."""
        return cls(
            job_id=job.id,
            fence=job.fence,
            attempt=job.attempt,
            claimed_at=claimed_at,
            spec=JobSpec.model_validate(job.spec),
            dataset_id=job.dataset_id,
            flops_per_sample=job.flops_per_sample,
            tenant=job.tenant,
        )


def claim(
    *,
    session: Session,
    notifier: Notifier,
    job_id: str,
    worker: str,
    lease_ttl_s: float,
    max_running: int | None = None,
) -> Claim | None:
    """queued -> running for this worker, or None if someone else has it or it is gone.

    A tenant already running `max_running` jobs waits: the job stays queued and the
    reconciler rings for it again later.
    """
    job = repository.get(session, job_id)
    if job is None or job.status != JobStatus.QUEUED:
        return None
    if (
        max_running is not None
        and repository.count(session, tenant=job.tenant, status=JobStatus.RUNNING) >= max_running
    ):
        session.rollback()
        logger.info("job %s waits: tenant %s runs its most jobs", job_id, job.tenant)
        return None
    now = utcnow()
    attempt, fence = job.attempt + 1, job.fence + 1
    claimed = _move(
        session,
        notifier,
        job_id,
        {"status": JobStatus.QUEUED, "fence": job.fence, "cancel_requested": False},
        {
            "status": JobStatus.RUNNING,
            "reason": "claimed",
            "attempt": attempt,
            "fence": fence,
            "worker": worker,
            "lease_expires_at": now + timedelta(seconds=lease_ttl_s),
            "started_at": job.started_at or now,
        },
        status_event(JobStatus.RUNNING, f"claimed by {worker}", attempt=attempt, worker=worker),
        fence=fence,
    )
    if claimed is None:
        return None
    return Claim.of(claimed, now)


def renew(*, session: Session, claim: Claim, lease_ttl_s: float) -> bool:
    """Extend the lease; True when the user has asked to cancel. Raises FenceLost."""
    renewed = repository.compare_and_set(
        session,
        claim.job_id,
        {"status": JobStatus.RUNNING, "fence": claim.fence},
        {"lease_expires_at": utcnow() + timedelta(seconds=lease_ttl_s)},
    )
    if renewed is None:
        session.rollback()
        raise _fence_lost(claim)
    session.commit()
    return renewed.cancel_requested


def record(*, session: Session, notifier: Notifier, claim: Claim, new: list[NewEvent]) -> list[str]:
    """Append a batch of the trainer's events under the claim's fence, and record the
    checkpoints among them; the paths of checkpoints the job's policy no longer keeps."""
    events.append(session, claim.job_id, new, fence=claim.fence)
    saved = [CheckpointSaved.model_validate(e.data) for e in new if e.type == "checkpoint"]
    pruned: list[str] = []
    if saved:
        for checkpoint in saved:
            checkpoints.record_saved(
                session, job_id=claim.job_id, tenant=claim.tenant, saved=checkpoint
            )
        pruned = checkpoints.prune(
            session,
            job_id=claim.job_id,
            policy=claim.spec.checkpoint,
            target=claim.spec.training.target,
        )
    session.commit()
    notifier.publish(claim.job_id)
    return pruned


def finish(
    *,
    session: Session,
    notifier: Notifier,
    claim: Claim,
    status: JobStatus,
    reason: str,
    result: dict[str, Any] | None = None,
    timings: dict[str, Any] | None = None,
) -> Job:
    """running -> succeeded | failed | cancelled, with the result and where the time went."""
    assert status in TERMINAL
    job = _job(session, claim.job_id)
    now = utcnow()
    done = _move(
        session,
        notifier,
        claim.job_id,
        {"status": JobStatus.RUNNING, "fence": claim.fence},
        {
            "status": status,
            "reason": reason,
            "finished_at": now,
            "lease_expires_at": None,
            "result": result,
            "timings": end_timings(job, now, timings),
        },
        status_event(status, reason),
    )
    if done is None:
        raise _fence_lost(claim)
    return done


def _released(fence: int) -> dict[str, Any]:
    """What every hand-back writes: no holder, and a new fence that refuses the old one."""
    return {"worker": None, "lease_expires_at": None, "fence": fence + 1}


def hand_back(
    job: Job, now: datetime, reason: str, *, restart: bool, max_restarts: int
) -> dict[str, Any]:
    """Where a running job goes when its worker lets go of it: back to the queue (to resume
    from its newest checkpoint), or cancelled when the user asked, or failed once
    infrastructure failures have restarted it `max_restarts` times."""
    released = {
        **_released(job.fence),
        "dispatched_at": None,
    }  # the reconciler rings for it at once
    ended = {"finished_at": now, "timings": end_timings(job, now)}
    if job.cancel_requested:
        return {**released, **ended, "status": JobStatus.CANCELLED, "reason": CANCELLED}
    if restart and job.restarts >= max_restarts:
        return {**released, **ended, "status": JobStatus.FAILED, "reason": MAX_RESTARTS_REASON}
    return {
        **released,
        "status": JobStatus.QUEUED,
        "reason": reason,
        "restarts": job.restarts + int(restart),
    }


def release(
    *,
    session: Session,
    notifier: Notifier,
    claim: Claim,
    reason: str,
    restart: bool,
    max_restarts: int,
) -> Job:
    """The holder lets go of a running job: a graceful hand-back (`restart=False`, the worker
    is stopping) or an infrastructure failure it survived (its trainer was killed). Raises
    FenceLost when the claim no longer holds."""
    job = _job(session, claim.job_id)
    back = hand_back(job, utcnow(), reason, restart=restart, max_restarts=max_restarts)
    moved = _move(
        session,
        notifier,
        claim.job_id,
        {"status": JobStatus.RUNNING, "fence": claim.fence},
        back,
        status_event(back["status"], back["reason"]),
    )
    if moved is None:
        raise _fence_lost(claim)
    return moved


def disband(
    *, session: Session, notifier: Notifier, claim: Claim, reason: str, give_up: bool = False
) -> bool:
    """A gang that did not form: the job goes back to the queue, rung for at once, without
    counting a restart, or, when `give_up` (the fleet no longer has its nodes), fails with
    `reason`; False if it was no longer this claim's."""
    now = utcnow()
    if give_up:
        job = _job(session, claim.job_id)
        status = JobStatus.FAILED
        change: dict[str, Any] = {"finished_at": now, "timings": end_timings(job, now)}
    else:
        status, change = JobStatus.QUEUED, {"dispatched_at": now}
    moved = _move(
        session,
        notifier,
        claim.job_id,
        {"status": JobStatus.RUNNING, "fence": claim.fence},
        {**_released(claim.fence), "status": status, "reason": reason, **change},
        status_event(status, reason),
    )
    return moved is not None


def reap(*, session: Session, notifier: Notifier, max_restarts: int, limit: int = 100) -> list[str]:
    """Take running jobs whose lease expired (their worker is gone) back from it: to the
    queue, or to their end when cancelled or out of restarts."""
    reaped = []
    now = utcnow()
    for job in repository.expired_leases(session, now, limit):
        back = hand_back(job, now, WORKER_LOST, restart=True, max_restarts=max_restarts)
        moved = repository.compare_and_set(
            session, job.id, {"status": JobStatus.RUNNING, "fence": job.fence}, back
        )
        if moved is not None:
            events.append(session, job.id, [status_event(back["status"], back["reason"])])
            reaped.append(job.id)
    session.commit()
    for job_id in reaped:
        notifier.publish(job_id)
    return reaped


def cancel_queued(*, session: Session, notifier: Notifier, job: Job) -> Job | None:
    """queued -> cancelled; None when the job moved on between the read and this write."""
    now = utcnow()
    return _move(
        session,
        notifier,
        job.id,
        {"status": JobStatus.QUEUED},
        {
            "status": JobStatus.CANCELLED,
            "reason": CANCELLED,
            "finished_at": now,
            "timings": end_timings(job, now),
        },
        status_event(JobStatus.CANCELLED, CANCELLED),
    )


def ask_to_cancel(*, session: Session, job: Job) -> Job | None:
    """Flag a running job for its worker to stop; None when it is no longer running."""
    asked = repository.compare_and_set(
        session, job.id, {"status": JobStatus.RUNNING}, {"cancel_requested": True}
    )
    if asked is None:
        session.rollback()
        return None
    session.commit()
    return asked


def redispatch(
    *, session: Session, dispatcher: Dispatcher, older_than_s: float, limit: int = 100
) -> list[str]:
    """Ring the broker again for queued jobs whose doorbell is old or was never rung."""
    now = utcnow()
    stale = repository.undispatched(session, now - timedelta(seconds=older_than_s), limit)
    for job_id, _ in stale:
        repository.compare_and_set(
            session, job_id, {"status": JobStatus.QUEUED}, {"dispatched_at": now}
        )
    session.commit()
    for job_id, device in stale:
        dispatcher.try_send(job_id, device)
    return [job_id for job_id, _ in stale]
