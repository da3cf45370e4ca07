"""What one attempt of a claimed job needs before its trainer starts, read in one call.

The supervisor asks once (`payload`) and gets the trainer's whole payload: where its data
and checkpoints are, where it starts from, what earlier attempts already reported. Every
input is re-checked here, not only at submit, because it may have gone since.
"""

from sqlalchemy.orm import Session

from app.checkpoints import service as checkpoints
from app.config import Settings
from app.datasets import service as datasets
from app.errors import CheckpointNotFound, JobNotFound
from app.events import service as events
from app.jobs import repository
from app.jobs.protocol import StartPoint, TrainerPayload
from app.jobs.transitions import Claim
from app.storage import Storage

# Every metric event of a job fits in one read.
METRICS_MAX = 100_000


class InputGone(Exception):
    """A dataset or checkpoint the job names no longer exists: the job's own failure."""


def reported_epoch(session: Session, claim: Claim) -> int:
    """The last epoch whose metrics the job's earlier attempts stored (0 on a first run).

    A resumed attempt retrains the epochs after its checkpoint exactly as before (the RNG
    is restored), so it reports only those beyond this one: every epoch appears once.
    """
    if claim.attempt == 1:
        return 0
    metrics = events.page(session, claim.job_id, after=0, limit=METRICS_MAX, types=("metric",))
    epochs = [int(e.data["epoch"]) for e in metrics if e.data.get("scope") == "epoch"]
    return max(epochs, default=0)


def start_point(session: Session, claim: Claim) -> StartPoint | None:
    """Where the trainer starts: the job's own newest checkpoint when it ran before (it
    lost its worker), else its warm start, else nothing (random initialisation)."""
    job = repository.get(session, claim.job_id)
    if job is None:
        raise JobNotFound(claim.job_id)
    freeze = claim.spec.init.freeze if claim.spec.init is not None else []
    own = checkpoints.newest_of_job(session, claim.job_id)
    if own is not None and own.state_sha256 is not None:
        return checkpoints.start(own, load=list(own.tensors), freeze=freeze, resume=True)
    if job.warm_start is None:
        return None
    # Re-checked here: the warm start must still be the job's own tenant's checkpoint.
    try:
        source = checkpoints.get(
            session=session, checkpoint_id=job.warm_start["checkpoint"], tenant=job.tenant
        )
    except CheckpointNotFound as error:
        raise InputGone(f"the job's warm start is gone: {error.message}") from error
    return checkpoints.start(
        source, load=job.warm_start["loaded"], freeze=freeze, resume=job.warm_start["resume"]
    )


def dataset_path(
    session: Session, storage: Storage, dataset: str | None, *, tenant: str
) -> str | None:
    """Where a stored dataset the job trains on lies; None for synthetic data."""
    if dataset is None:
        return None
    # Re-checked here, not only at submit: a job reads only its own tenant's data.
    row = datasets.find(session, dataset, tenant=tenant)
    if row is None:
        raise InputGone(f"dataset {dataset} was deleted")
    return str(storage.path(row.path))


def payload(
    *, session: Session, storage: Storage, settings: Settings, claim: Claim
) -> TrainerPayload:
    """The trainer's payload for this attempt; InputGone when its data or warm start is."""
    job = repository.get(session, claim.job_id)
    if job is None:
        raise JobNotFound(claim.job_id)
    return TrainerPayload(
        job_id=claim.job_id,
        attempt=claim.attempt,
        spec=claim.spec,
        artifacts_dir=str(storage.root),
        checkpoint_dir=f"checkpoints/{claim.job_id}",
        start=start_point(session, claim),
        reported_epoch=reported_epoch(session, claim),
        warm_start=job.warm_start,
        flops_per_sample=claim.flops_per_sample,
        dataset_path=dataset_path(session, storage, claim.dataset_id, tenant=claim.tenant),
        val_dataset_path=dataset_path(
            session, storage, claim.spec.training.val_dataset, tenant=claim.tenant
        ),
        claimed_at=claim.claimed_at.timestamp(),
        step_metric_interval_s=settings.step_metric_interval_s,
    )
