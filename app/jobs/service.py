"""The rules of a job's life: submit, cancel, claim, renew, finish, reap, re-dispatch.

Every transition is a compare-and-set on the job row plus a `status` event in the same
transaction; services commit first and only then ring the broker or notify followers,
so whoever reacts always finds the committed row.
"""

import hashlib
import json
import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.broker import Dispatcher
from app.checkpoints import service as checkpoints
from app.config import Settings
from app.datasets import service as datasets
from app.errors import AppError, InvalidTransition, JobNotFound, NotFound, SpecInvalid, TooManyJobs
from app.events import repository as events_repository
from app.events import service as events
from app.events.notify import Notifier
from app.events.schemas import NewEvent
from app.ids import new_id
from app.jobs import feasibility, repository
from app.orm import Checkpoint, Event, Job
from app.orm.base import utcnow
from app.spec import JobSpec, NetSummary, SyntheticData, compat, presets, summarize
from app.spec.schemas import (
    CLASSIFICATION_ONLY,
    MAX_EPOCHS,
    REGRESSION_ONLY,
    CheckpointPolicy,
    PlateauSchedule,
)
from app.workers import service as fleet

logger = logging.getLogger(__name__)

TERMINAL = events.TERMINAL_STATUSES


class NoFinalWeights(NotFound):
    code = "no_final_weights"


class IdempotencyKeyReused(AppError):
    status_code = 422
    code = "idempotency_key_reused"


STATUSES = ("queued", "running", *sorted(TERMINAL))
# The reason of a job failed because infrastructure failures restarted it too often.
MAX_RESTARTS_REASON = "max_restarts"
METRICS_MAX = 100_000


def status_event(status: str, reason: str, **extra: Any) -> NewEvent:
    return NewEvent(type="status", data={"status": status, "reason": reason, **extra})


@dataclass(frozen=True)
class DataShape:
    """What a net must fit: one sample's shape, the task and the outputs it must end in."""

    dataset_id: str | None
    input_shape: list[int]
    task: str
    outputs: int
    bytes: int


# Synthetic samples are generated as float32.
SYNTHETIC_BYTES_PER_VALUE = 4


def data_shape(
    session: Session, dataset: str | SyntheticData, field: str, *, tenant: str
) -> DataShape:
    """The data a spec names: built-in synthetic data, or one of the tenant's datasets."""
    if isinstance(dataset, SyntheticData):
        outputs = dataset.classes if dataset.task == "classification" else dataset.targets
        size = dataset.samples * math.prod(dataset.input_shape) * SYNTHETIC_BYTES_PER_VALUE
        return DataShape(None, dataset.input_shape, dataset.task, outputs, size)
    row = datasets.find(session, dataset, tenant=tenant, lock=True)
    if row is None:
        raise SpecInvalid.at(field, f"no dataset {dataset!r}; upload one with POST /v1/datasets")
    stored = row.classes if row.task == "classification" else row.targets
    assert stored is not None  # every stored dataset has one or the other
    return DataShape(row.id, row.input_shape, row.task, stored, row.bytes)


def _metric_fits(metric: str, task: str, field: str) -> None:
    if task == "regression" and metric in CLASSIFICATION_ONLY:
        raise SpecInvalid.at(
            field, f"{metric} needs a classification dataset; try val_loss or val_mae"
        )
    if task == "classification" and metric in REGRESSION_ONLY:
        raise SpecInvalid.at(field, f"{metric} needs a regression dataset; try val_accuracy")


@dataclass(frozen=True)
class Plan:
    spec: JobSpec  # with its preset expanded into layers
    data: DataShape
    net: NetSummary
    warm_start: dict[str, Any] | None


def plan(session: Session, spec: JobSpec, *, tenant: str, limits: Settings) -> Plan:
    """Resolve the data, expand a preset and infer the net's shapes: everything that can
    fail before queueing fails here, with the field that is wrong."""
    data = data_shape(session, spec.dataset, "dataset", tenant=tenant)
    training = spec.training
    if training.epochs > limits.max_epochs:
        raise SpecInvalid.at("training.epochs", f"at most {limits.max_epochs} epochs per job")
    if data.bytes > limits.max_dataset_bytes:
        raise SpecInvalid.at(
            "dataset", f"holds {data.bytes} bytes; jobs train on at most {limits.max_dataset_bytes}"
        )
    if training.target is not None:
        _metric_fits(training.target.metric, data.task, "training.target.metric")
    if isinstance(spec.schedule, PlateauSchedule):
        _metric_fits(spec.schedule.metric, data.task, "schedule.metric")
    if training.val_dataset is not None:
        val = data_shape(session, training.val_dataset, "training.val_dataset", tenant=tenant)
        if (val.input_shape, val.task) != (data.input_shape, data.task) or (
            val.outputs > data.outputs
            if data.task == "classification"
            else val.outputs != data.outputs
        ):
            raise SpecInvalid.at(
                "training.val_dataset",
                f"holds {val.task} samples of shape {val.input_shape} with {val.outputs} outputs; "
                f"the training data holds {data.task} samples of shape {data.input_shape} "
                f"with {data.outputs}",
            )
    model = presets.expand(spec.model, data.input_shape, data.outputs)
    assert model.layers is not None
    outputs_are = "classes" if data.task == "classification" else "regression targets"
    net = summarize(model.layers, data.input_shape, data.outputs, outputs_are=outputs_are)
    if net.params > limits.max_params:
        raise SpecInvalid.at(
            "model", f"has {net.params} parameters; a job may train at most {limits.max_params}"
        )
    feasibility.check(session, spec, net, tenant=tenant, limits=limits)
    warm_start = _plan_warm_start(session, spec, net, tenant) if spec.init is not None else None
    return Plan(spec.model_copy(update={"model": model}), data, net, warm_start)


def _plan_warm_start(
    session: Session, spec: JobSpec, net: NetSummary, tenant: str
) -> dict[str, Any]:
    """Which of the checkpoint's tensors load into the net, from its recorded header."""
    assert spec.init is not None
    checkpoint = checkpoints.get(session=session, checkpoint_id=spec.init.checkpoint, tenant=tenant)
    if spec.init.resume:
        source = repository.get(session, checkpoint.job_id) if checkpoint.job_id else None
        if checkpoint.state_sha256 is None or source is None:
            raise SpecInvalid.at(
                "init.resume",
                f"checkpoint {checkpoint.id} holds weights only, no training state to resume",
            )
        if source.spec["optimizer"]["name"] != spec.optimizer.name:
            raise SpecInvalid.at(
                "init.resume",
                f"the checkpoint's job trained with {source.spec['optimizer']['name']}; "
                f"its optimizer state cannot continue as {spec.optimizer.name}",
            )
        # The optimizer state covers exactly the parameters that trained there.
        frozen_there = (source.spec.get("init") or {}).get("freeze", [])
        if frozen_there != spec.init.freeze:
            raise SpecInvalid.at(
                "init.freeze", f"a resume freezes what the checkpoint's job froze: {frozen_there}"
            )
    return compat.plan_warm_start(net, checkpoint.id, checkpoint.tensors, spec.init)


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
    queued = repository.count(session, tenant=tenant, status="queued")
    if queued >= limits.max_queued_jobs:
        raise TooManyJobs(
            f"tenant {tenant!r} has {queued} queued jobs, the most it may have; "
            "wait for some to start or cancel some"
        )
    planned = plan(session, spec, tenant=tenant, limits=limits)
    spec, dataset_id, net = planned.spec, planned.data.dataset_id, planned.net
    fleet.check_fleet_fits(
        session=session, nodes=spec.distributed.nodes, device=spec.resources.device
    )
    now = utcnow()
    job = Job(
        id=new_id("job"),
        tenant=tenant,
        idempotency_key=idempotency_key,
        request_sha256=request_sha256,
        name=spec.name,
        status="queued",
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
    events.append(session, job.id, [status_event("queued", "submitted")])
    session.commit()
    notifier.publish(job.id)
    # After the commit, so the worker finds the row. If the broker is down the job stays
    # queued and the reconciler rings again; the submit itself has succeeded.
    dispatcher.try_send(job.id, job.device)
    return job


def _job(session: Session, job_id: str) -> Job:
    job = repository.get(session, job_id)
    if job is None:
        raise JobNotFound(job_id)
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
    status: str | None,
    tag: str | None,
    cursor: str | None,
    limit: int,
) -> list[Job]:
    """The tenant's jobs newest first, filtered by status and tag, after a cursor."""
    return repository.page(
        session, tenant=tenant, status=status, tag=tag, cursor=cursor, limit=limit
    )


def cursor_after(jobs: list[Job]) -> str | None:
    return repository.encode_cursor(jobs[-1]) if jobs else None


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
        if job.status == "queued":
            now = utcnow()
            done = repository.compare_and_set(
                session,
                job_id,
                {"status": "queued"},
                {
                    "status": "cancelled",
                    "reason": "cancelled",
                    "finished_at": now,
                    "timings": end_timings(job, now),
                },
            )
            if done is not None:
                events.append(session, job_id, [status_event("cancelled", "cancelled")])
                session.commit()
                notifier.publish(job_id)
                return done
        else:
            asked = repository.compare_and_set(
                session, job_id, {"status": "running"}, {"cancel_requested": True}
            )
            if asked is not None:
                session.commit()
                return asked
        # The job moved on between the read and the write (claimed, or finished): look again.
        session.rollback()


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
    spec: dict[str, Any]
    dataset_id: str | None
    flops_per_sample: int
    tenant: str


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
    if job is None or job.status != "queued":
        return None
    if (
        max_running is not None
        and repository.count(session, tenant=job.tenant, status="running") >= max_running
    ):
        session.rollback()
        logger.info("job %s waits: tenant %s runs its most jobs", job_id, job.tenant)
        return None
    now = utcnow()
    claimed = repository.compare_and_set(
        session,
        job_id,
        {"status": "queued", "fence": job.fence, "cancel_requested": False},
        {
            "status": "running",
            "reason": "claimed",
            "attempt": job.attempt + 1,
            "fence": job.fence + 1,
            "worker": worker,
            "lease_expires_at": now + timedelta(seconds=lease_ttl_s),
            "started_at": job.started_at or now,
        },
    )
    if claimed is None:
        session.rollback()
        return None
    reason = f"claimed by {worker}"
    events.append(
        session,
        job_id,
        [status_event("running", reason, attempt=claimed.attempt, worker=worker)],
        fence=claimed.fence,
    )
    session.commit()
    notifier.publish(job_id)
    return Claim(
        job_id,
        claimed.fence,
        claimed.attempt,
        now,
        claimed.spec,
        claimed.dataset_id,
        claimed.flops_per_sample,
        claimed.tenant,
    )


def renew(*, session: Session, claim: Claim, lease_ttl_s: float) -> bool:
    """Extend the lease; True when the user has asked to cancel. Raises FenceLost."""
    renewed = repository.compare_and_set(
        session,
        claim.job_id,
        {"status": "running", "fence": claim.fence},
        {"lease_expires_at": utcnow() + timedelta(seconds=lease_ttl_s)},
    )
    if renewed is None:
        session.rollback()
        raise events.FenceLost(f"job {claim.job_id} is no longer held with fence {claim.fence}")
    session.commit()
    return renewed.cancel_requested


def record(*, session: Session, notifier: Notifier, claim: Claim, new: list[NewEvent]) -> list[str]:
    """Append a batch of the trainer's events under the claim's fence, and record the
    checkpoints among them; the paths of checkpoints the job's policy no longer keeps."""
    events.append(session, claim.job_id, new, fence=claim.fence)
    saved = [e.data for e in new if e.type == "checkpoint"]
    pruned: list[str] = []
    if saved:
        policy = CheckpointPolicy.model_validate(claim.spec.get("checkpoint", {}))
        target = claim.spec["training"].get("target")
        for data in saved:
            checkpoints.record_saved(session, job_id=claim.job_id, tenant=claim.tenant, saved=data)
        pruned = checkpoints.prune(session, job_id=claim.job_id, policy=policy, target=target)
    session.commit()
    notifier.publish(claim.job_id)
    return pruned


def reported_epoch(*, session: Session, claim: Claim) -> int:
    """The last epoch whose metrics the job's earlier attempts stored (0 on a first run).

    A resumed attempt retrains the epochs after its checkpoint exactly as before (the RNG
    is restored), so it reports only those beyond this one: every epoch appears once.
    """
    if claim.attempt == 1:
        return 0
    metrics = events.page(session, claim.job_id, after=0, limit=METRICS_MAX, types=("metric",))
    epochs = [int(e.data["epoch"]) for e in metrics if e.data.get("scope") == "epoch"]
    return max(epochs, default=0)


def start_point(*, session: Session, claim: Claim) -> dict[str, Any] | None:
    """Where the trainer starts: the job's own newest checkpoint when it ran before (it
    lost its worker), else its warm start, else nothing (random initialisation)."""
    job = _job(session, claim.job_id)
    freeze = (job.spec.get("init") or {}).get("freeze", [])
    own = checkpoints.newest_of_job(session, claim.job_id)
    if own is not None and own.state_sha256 is not None:
        return checkpoints.start(own, load=list(own.tensors), freeze=freeze, resume=True)
    if job.warm_start is None:
        return None
    # Re-checked here: the warm start must still be the job's own tenant's checkpoint.
    source = checkpoints.get(
        session=session, checkpoint_id=job.warm_start["checkpoint"], tenant=job.tenant
    )
    return checkpoints.start(
        source, load=job.warm_start["loaded"], freeze=freeze, resume=job.warm_start["resume"]
    )


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


def finish(
    *,
    session: Session,
    notifier: Notifier,
    claim: Claim,
    status: str,
    reason: str,
    result: dict[str, Any] | None = None,
    timings: dict[str, Any] | None = None,
) -> Job:
    """running -> succeeded | failed | cancelled, with the result and where the time went."""
    assert status in TERMINAL
    job = _job(session, claim.job_id)
    now = utcnow()
    done = repository.compare_and_set(
        session,
        claim.job_id,
        {"status": "running", "fence": claim.fence},
        {
            "status": status,
            "reason": reason,
            "finished_at": now,
            "lease_expires_at": None,
            "result": result,
            "timings": end_timings(job, now, timings),
        },
    )
    if done is None:
        session.rollback()
        raise events.FenceLost(f"job {claim.job_id} is no longer held with fence {claim.fence}")
    events.append(session, claim.job_id, [status_event(status, reason)], fence=None)
    session.commit()
    notifier.publish(claim.job_id)
    return done


def hand_back(
    job: Job, now: datetime, reason: str, *, restart: bool, max_restarts: int
) -> dict[str, Any]:
    """Where a running job goes when its worker lets go of it: back to the queue (to resume
    from its newest checkpoint), or cancelled when the user asked, or failed once
    infrastructure failures have restarted it `max_restarts` times."""
    released: dict[str, Any] = {
        "worker": None,
        "lease_expires_at": None,
        "fence": job.fence + 1,
        "dispatched_at": None,  # the reconciler rings for it at once
    }
    ended = {"finished_at": now, "timings": end_timings(job, now)}
    if job.cancel_requested:
        return {**released, **ended, "status": "cancelled", "reason": "cancelled"}
    if restart and job.restarts >= max_restarts:
        return {**released, **ended, "status": "failed", "reason": MAX_RESTARTS_REASON}
    return {
        **released,
        "status": "queued",
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
    job = get(session=session, job_id=claim.job_id, tenant=claim.tenant)
    back = hand_back(job, utcnow(), reason, restart=restart, max_restarts=max_restarts)
    moved = repository.compare_and_set(
        session, claim.job_id, {"status": "running", "fence": claim.fence}, back
    )
    if moved is None:
        session.rollback()
        raise events.FenceLost(f"job {claim.job_id} is no longer held with fence {claim.fence}")
    events.append(session, claim.job_id, [status_event(back["status"], back["reason"])])
    session.commit()
    notifier.publish(claim.job_id)
    return moved


def reap(*, session: Session, notifier: Notifier, max_restarts: int, limit: int = 100) -> list[str]:
    """Take running jobs whose lease expired (their worker is gone) back from it: to the
    queue, or to their end when cancelled or out of restarts."""
    reaped = []
    now = utcnow()
    for job in repository.expired_leases(session, now, limit):
        back = hand_back(job, now, "worker_lost", restart=True, max_restarts=max_restarts)
        moved = repository.compare_and_set(
            session, job.id, {"status": "running", "fence": job.fence}, back
        )
        if moved is not None:
            events.append(session, job.id, [status_event(back["status"], back["reason"])])
            reaped.append(job.id)
    session.commit()
    for job_id in reaped:
        notifier.publish(job_id)
    return reaped


def redispatch(
    *, session: Session, dispatcher: Dispatcher, older_than_s: float, limit: int = 100
) -> list[str]:
    """Ring the broker again for queued jobs whose doorbell is old or was never rung."""
    now = utcnow()
    stale = repository.undispatched(session, now - timedelta(seconds=older_than_s), limit)
    for job_id, _ in stale:
        repository.compare_and_set(session, job_id, {"status": "queued"}, {"dispatched_at": now})
    session.commit()
    for job_id, device in stale:
        dispatcher.try_send(job_id, device)
    return [job_id for job_id, _ in stale]
