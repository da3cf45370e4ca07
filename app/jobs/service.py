"""A client's use cases of jobs: submit, read, cancel, resume.

How a spec is checked against the tenant's data is planning.py; every move of a job's
status is transitions.py; what a claimed attempt needs is attempt.py.
"""

import hashlib
import json
from datetime import timedelta

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.broker import Dispatcher
from app.checkpoints import service as checkpoints
from app.config import Settings
from app.errors import AppError, InvalidTransition, JobNotFound, NotFound, SpecInvalid, TooManyJobs
from app.events import repository as events_repository
from app.events import service as events
from app.events.notify import Notifier
from app.ids import new_id
from app.jobs import repository, transitions
from app.jobs.planning import plan
from app.jobs.status import TERMINAL, JobStatus
from app.jobs.transitions import status_event
from app.orm import Checkpoint, Event, Job
from app.orm.base import utcnow
from app.spec import JobSpec
from app.spec.base import MAX_EPOCHS
from app.workers import service as fleet


class NoFinalWeights(NotFound):
    code = "no_final_weights"


class IdempotencyKeyReused(AppError):
    status_code = 422
    code = "idempotency_key_reused"


def request_hash(spec: JobSpec) -> str:
    """The submitted spec's fingerprint: JSON key order and spacing do not change it."""
    canonical = json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _earlier_submit(
    session: Session, *, tenant: str, key: str, request_sha256: str, ttl_s: float
) -> Job | None:
    """The job an Idempotency-Key already made, if it is younger than the TTL; a key
    older than that is released for reuse."""
    job = repository.by_idempotency_key(session, tenant, key)
    if job is None:
        return None
    if job.created_at < utcnow() - timedelta(seconds=ttl_s):
        repository.release_idempotency_key(session, job.id)
        session.flush()
        return None
    if job.request_sha256 != request_sha256:
        raise IdempotencyKeyReused(
            f"Idempotency-Key {key!r} was used for job {job.id} with another body; "
            "use a new key for a new job"
        )
    return job


def submit(
    *,
    session: Session,
    dispatcher: Dispatcher,
    notifier: Notifier,
    limits: Settings,
    tenant: str,
    spec: JobSpec,
    idempotency_key: str | None = None,
) -> Job:
    """Validate the spec against its dataset, store the job queued, then ring the broker.

    With an Idempotency-Key, the same key and spec return the job the first submit made.
    """
    request_sha256 = request_hash(spec)
    if idempotency_key is not None:
        earlier = _earlier_submit(
            session,
            tenant=tenant,
            key=idempotency_key,
            request_sha256=request_sha256,
            ttl_s=limits.idempotency_ttl_s,
        )
        if earlier is not None:
            return earlier
    queued = repository.count(session, tenant=tenant, status=JobStatus.QUEUED)
    if queued >= limits.max_queued_jobs:
        raise TooManyJobs(
            f"tenant {tenant!r} has {queued} queued jobs, the most it may have; "
            "wait for some to start or cancel some"
        )
    planned = plan(session, spec, tenant=tenant, limits=limits)
    fleet.check_fleet_fits(
        session=session, nodes=planned.spec.distributed.nodes, device=planned.spec.resources.device
    )
    spec, dataset_id, net = planned.spec, planned.data.dataset_id, planned.net
    now = utcnow()
    job = Job(
        id=new_id("job"),
        tenant=tenant,
        idempotency_key=idempotency_key,
        request_sha256=request_sha256,
        name=spec.name,
        status=JobStatus.QUEUED,
        spec=spec.model_dump(mode="json"),
        dataset_id=dataset_id,
        priority=spec.priority,
        device=spec.resources.device,
        params=net.params,
        flops_per_sample=net.flops,
        warm_start=planned.warm_start,
        created_at=now,
        dispatched_at=now,
    )
    repository.add(session, job, spec.tags)
    try:
        session.flush()
    except IntegrityError:
        # A concurrent submit with the same Idempotency-Key committed first: answer its job.
        session.rollback()
        winner = (
            repository.by_idempotency_key(session, tenant, idempotency_key)
            if idempotency_key is not None
            else None
        )
        if winner is None:
            raise
        if winner.request_sha256 != request_sha256:
            raise IdempotencyKeyReused(
                f"Idempotency-Key {idempotency_key!r} was used for job {winner.id} with "
                "another body; use a new key for a new job"
            ) from None
        return winner
    events.append(session, job.id, [status_event(JobStatus.QUEUED, "submitted")])
    session.commit()
    notifier.publish(job.id)
    # After the commit, so the worker finds the row. If the broker is down the job stays
    # queued and the reconciler rings again; the submit itself has succeeded.
    dispatcher.try_send(job.id, job.device)
    return job


def get(*, session: Session, job_id: str, tenant: str) -> Job:
    """The tenant's job; another tenant's answers exactly like a missing one."""
    job = repository.get(session, job_id)
    if job is None or job.tenant != tenant:
        raise JobNotFound(job_id)
    return job


def page(
    *,
    session: Session,
    tenant: str,
    status: JobStatus | None,
    tag: str | None,
    cursor: str | None,
    limit: int,
) -> list[Job]:
    """The tenant's jobs newest first, filtered by status and tag, after a cursor."""
    return repository.page(
        session, tenant=tenant, status=status, tag=tag, cursor=cursor, limit=limit
    )


def cursor_of(job: Job) -> str:
    """The cursor that lists the jobs after `job`."""
    return repository.encode_cursor(job)


def metrics(
    *, session: Session, job_id: str, tenant: str, after: int, max_points: int
) -> tuple[list[Event], int]:
    """A job's metric events after `after`, oldest first, downsampled to about `max_points`,
    and the newest seq they cover."""
    get(session=session, job_id=job_id, tenant=tenant)
    return events_repository.metrics_downsampled(session, job_id, after, max_points)


def events_of(*, session: Session, job_id: str, tenant: str, after: int, limit: int) -> list[Event]:
    """A job's stored events after `after`, oldest first."""
    get(session=session, job_id=job_id, tenant=tenant)
    return events.page(session, job_id, after=after, limit=limit)


def cancel(*, session: Session, notifier: Notifier, job_id: str, tenant: str) -> Job:
    """Cancel a queued job at once; ask the worker of a running one to stop it."""
    while True:
        job = get(session=session, job_id=job_id, tenant=tenant)
        if job.status in TERMINAL:
            raise InvalidTransition(f"job {job_id} is already {job.status}")
        if job.status == JobStatus.QUEUED:
            done = transitions.cancel_queued(session=session, notifier=notifier, job=job)
        else:
            done = transitions.ask_to_cancel(session=session, job=job)
        if done is not None:
            return done
        # The job moved on between the read and the write (claimed, or finished): look again.


def checkpoints_of(*, session: Session, job_id: str, tenant: str) -> list[Checkpoint]:
    """A job's checkpoints, oldest first."""
    get(session=session, job_id=job_id, tenant=tenant)
    return checkpoints.list_for_job(session, job_id)


def final_weights(*, session: Session, job_id: str, tenant: str) -> Checkpoint:
    """The checkpoint holding a finished job's final weights."""
    job = get(session=session, job_id=job_id, tenant=tenant)
    final = checkpoints.final_of_job(session, job_id)
    if final is None:
        raise NoFinalWeights(f"job {job_id} is {job.status} and has no final weights")
    return final


def resume(
    *,
    session: Session,
    dispatcher: Dispatcher,
    notifier: Notifier,
    limits: Settings,
    tenant: str,
    job_id: str,
    epochs: int,
) -> Job:
    """A new job continuing a finished job from its newest checkpoint for `epochs` more."""
    job = get(session=session, job_id=job_id, tenant=tenant)
    return submit(
        session=session,
        dispatcher=dispatcher,
        notifier=notifier,
        limits=limits,
        tenant=tenant,
        spec=continuation(session, job, epochs),
    )


def continuation(session: Session, job: Job, epochs: int) -> JobSpec:
    """The spec of a job that continues a finished one from its newest checkpoint."""
    if job.status not in TERMINAL:
        raise InvalidTransition(f"job {job.id} is {job.status}; only a finished job can be resumed")
    newest = checkpoints.newest_of_job(session, job.id)
    if newest is None or newest.epoch is None:
        raise InvalidTransition(f"job {job.id} saved no checkpoint to resume from")
    if newest.epoch + epochs > MAX_EPOCHS:
        raise SpecInvalid.at(
            "epochs",
            f"the checkpoint is at epoch {newest.epoch}; {epochs} more would pass the cap of "
            f"{MAX_EPOCHS} epochs per job (at most {max(MAX_EPOCHS - newest.epoch, 0)} more)",
        )
    spec = dict(job.spec)
    spec["training"] = {**spec["training"], "epochs": newest.epoch + epochs}
    spec["init"] = {
        "checkpoint": newest.id,
        "freeze": (job.spec.get("init") or {}).get("freeze", []),
        "strict": True,
        "resume": True,
    }
    spec["tags"] = list(dict.fromkeys([*spec.get("tags", []), f"resumes:{job.id}"]))[:32]
    try:
        return JobSpec.model_validate(spec)
    except ValidationError as error:
        # The stored spec validated once; what changed here is the epochs and the init.
        raise SpecInvalid.at("epochs", f"the continued job's spec is invalid: {error}") from None
