"""Checkpoints: check and store uploaded safetensors weights, describe and serve any."""

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Final

from sqlalchemy.orm import Session

from app import quotas
from app.checkpoints import repository
from app.checkpoints.safetensors_header import read_header
from app.checkpoints.schemas import CheckpointOut, TensorOut
from app.errors import AppError, CheckpointNotFound, UploadInvalid, UploadTooLarge
from app.ids import new_id
from app.jobs.protocol import CheckpointSaved, StartPoint
from app.orm import Checkpoint
from app.spec.compat import same_parameter_twice
from app.spec.optimization import Target, maximized
from app.spec.schemas import CheckpointPolicy
from app.storage import StagedFile, Storage

__all__ = [
    "CheckpointFileMissing",
    "CheckpointNotFound",
    "WeightsFile",
    "best_metric",
    "describe",
    "final_of_job",
    "get",
    "list_for_job",
    "newest_of_job",
    "page",
    "params",
    "prune",
    "record_saved",
    "start",
    "upload",
    "weights_file",
    "weights_path",
]

UPLOADS_DIR: Final = "checkpoints/uploads"
# Every checkpoint directory holds its weights under this name.
WEIGHTS_FILE: Final = "weights.safetensors"
UPLOAD_KIND: Final = "upload"


class CheckpointFileMissing(AppError):
    """The row exists but its weights file does not: removed from storage behind our back."""

    status_code = 410
    code = "checkpoint_file_missing"


@dataclass(frozen=True)
class WeightsFile:
    """A checkpoint's weights file as it is on disk now."""

    path: Path
    stat: os.stat_result


def get(*, session: Session, checkpoint_id: str, tenant: str) -> Checkpoint:
    """The tenant's checkpoint; CheckpointNotFound for a missing or another tenant's."""
    checkpoint = repository.get(session, checkpoint_id)
    if checkpoint is None or checkpoint.tenant != tenant:
        raise CheckpointNotFound(checkpoint_id)
    return checkpoint


def weights_path(storage: Storage, checkpoint: Checkpoint) -> Path:
    """Where a checkpoint's safetensors file lives."""
    return storage.path(checkpoint.path) / WEIGHTS_FILE


def weights_file(storage: Storage, checkpoint: Checkpoint) -> WeightsFile:
    """The weights file, checked to be there; CheckpointFileMissing otherwise."""
    path = weights_path(storage, checkpoint)
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise CheckpointFileMissing(
            f"checkpoint {checkpoint.id!r} is recorded but its weights file is missing"
        ) from None
    return WeightsFile(path=path, stat=stat)


def params(tensors: Mapping[str, Any]) -> int:
    """Number of values in a `tensors` table ({name: {"dtype", "shape"}})."""
    return sum(math.prod(tensor["shape"]) for tensor in tensors.values())


def describe(checkpoint: Checkpoint) -> CheckpointOut:
    """The public description of a checkpoint, with its parameter count."""
    return CheckpointOut(
        id=checkpoint.id,
        job_id=checkpoint.job_id,
        name=checkpoint.name,
        kind=checkpoint.kind,
        epoch=checkpoint.epoch,
        step=checkpoint.step,
        metrics=checkpoint.metrics,
        tensors={name: TensorOut(**tensor) for name, tensor in checkpoint.tensors.items()},
        params=params(checkpoint.tensors),
        bytes=checkpoint.bytes,
        sha256=checkpoint.sha256,
        created_at=checkpoint.created_at,
    )


def _tensors_of(staged: StagedFile) -> dict[str, Any]:
    with open(staged.path, "rb") as file:
        tensors = read_header(file, size=staged.bytes)
    twice = same_parameter_twice(list(tensors))
    if twice is not None:
        raise UploadInvalid.at(
            "file",
            f"tensors {twice[0]!r} and {twice[1]!r} are one parameter once the wrapper "
            "prefix is stripped; keep one",
        )
    return {name: {"dtype": info.dtype, "shape": info.shape} for name, info in tensors.items()}


def upload(
    *,
    session: Session,
    storage: Storage,
    tenant: str,
    stream: BinaryIO,
    size: int | None,
    name: str,
    max_bytes: int,
    quota_bytes: int,
) -> Checkpoint:
    """Store an uploaded safetensors file once its header checks out, and record it."""
    if size is not None and size > max_bytes:
        raise UploadTooLarge(f"file is {size} bytes; the limit is {max_bytes}")
    if size is not None:
        quotas.admit(session, tenant=tenant, adding=size, quota=quota_bytes)
    staged = storage.stage_upload(
        stream, parent=UPLOADS_DIR, filename=WEIGHTS_FILE, max_bytes=max_bytes
    )
    try:
        tensors = _tensors_of(staged)
        quotas.admit(session, tenant=tenant, adding=staged.bytes, quota=quota_bytes)
    except BaseException:
        storage.discard(staged)
        raise
    checkpoint_id = new_id("ckpt")
    checkpoint = Checkpoint(
        id=checkpoint_id,
        tenant=tenant,
        job_id=None,
        name=name,
        kind=UPLOAD_KIND,
        epoch=None,
        step=None,
        metrics={},
        tensors=tensors,
        bytes=staged.bytes,
        sha256=staged.sha256,
        path=f"{UPLOADS_DIR}/{checkpoint_id}",
        state_sha256=None,
    )
    storage.commit(staged, checkpoint.path)
    try:
        repository.add(session, checkpoint)
        session.commit()
    except BaseException:
        # Nothing stays behind from a failed upload: no row, no file.
        session.rollback()
        storage.delete(checkpoint.path)
        raise
    return checkpoint


def page(
    *, session: Session, tenant: str, job_id: str | None, cursor: str | None, limit: int
) -> list[Checkpoint]:
    """The tenant's checkpoints newest first, optionally one job's, after a cursor."""
    return repository.page(session, tenant=tenant, job_id=job_id, after=cursor, limit=limit)


def list_for_job(session: Session, job_id: str) -> list[Checkpoint]:
    """A job's checkpoints in training order: by epoch, the final one last, then by time."""
    return repository.for_job(session, job_id)


def checkpoint_name(kind: str, epoch: int) -> str:
    """`epoch 7`, `final (epoch 10)`, `stop (epoch 3)`: what the listing shows."""
    return f"epoch {epoch}" if kind == "epoch" else f"{kind} (epoch {epoch})"


def record_saved(
    session: Session, *, job_id: str, tenant: str, saved: CheckpointSaved
) -> Checkpoint:
    """Record a checkpoint a job's trainer wrote: the data of its `checkpoint` event."""
    checkpoint = Checkpoint(
        id=saved.id,
        tenant=tenant,
        job_id=job_id,
        name=checkpoint_name(saved.kind, saved.epoch),
        kind=saved.kind,
        epoch=saved.epoch,
        step=saved.step,
        metrics=saved.metrics,
        tensors=saved.tensors,
        bytes=saved.bytes,
        sha256=saved.sha256,
        path=saved.path,
        state_sha256=saved.state_sha256,
    )
    repository.add(session, checkpoint)
    return checkpoint


def best_metric(policy: CheckpointPolicy, target: Target | None, seen: Mapping[str, Any]) -> str:
    """What `best` means for a job: the policy's metric, else its target's, else validation."""
    if policy.metric is not None:
        return policy.metric
    if target is not None:
        return target.metric
    return next((m for m in ("val_accuracy", "val_loss") if m in seen), "train_loss")


def prune(
    session: Session, *, job_id: str, policy: CheckpointPolicy, target: Target | None
) -> list[str]:
    """Drop the epoch checkpoints the job's policy no longer keeps (final weights always
    stay); their paths, for the caller to delete once the transaction has committed."""
    if policy.keep == "all":
        return []
    saved = [c for c in repository.for_job(session, job_id) if c.kind in ("epoch", "stop")]
    if not saved:
        return []
    keep = {saved[-1].id} if policy.keep in ("last", "last_and_best") else set()
    if policy.keep in ("best", "last_and_best"):
        metric = best_metric(policy, target, saved[-1].metrics)
        scored = [c for c in saved if metric in c.metrics]
        if scored:
            sign = 1 if maximized(metric) else -1
            keep.add(max(scored, key=lambda c: sign * c.metrics[metric]).id)
    doomed = [c for c in saved if c.id not in keep]
    for checkpoint in doomed:
        session.delete(checkpoint)
    return [c.path for c in doomed]


def newest_of_job(session: Session, job_id: str) -> Checkpoint | None:
    """The job's checkpoint from its latest epoch (its final weights, if it finished)."""
    saved = repository.for_job(session, job_id)
    return saved[-1] if saved else None


def final_of_job(session: Session, job_id: str) -> Checkpoint | None:
    return next(
        (c for c in reversed(repository.for_job(session, job_id)) if c.kind == "final"), None
    )


def start(
    checkpoint: Checkpoint, *, load: list[str], freeze: list[str], resume: bool
) -> StartPoint:
    """What a trainer needs to start from `checkpoint` (paths relative to the artifacts)."""
    return StartPoint(
        checkpoint=checkpoint.id,
        path=checkpoint.path,
        sha256=checkpoint.sha256,
        state_sha256=checkpoint.state_sha256 if resume else None,
        load=load,
        freeze=freeze,
    )
