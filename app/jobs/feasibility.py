"""Whether a job that validates can start training on a worker of its class: something to
train, and memory for its net at its batch size. Checked at submit, from shapes alone."""

import math

from sqlalchemy.orm import Session

from app.config import Settings
from app.datasets import service as datasets
from app.errors import SpecInvalid
from app.spec import JobSpec, NetSummary, SyntheticData, memory

GIB = 1024**3


def check(
    session: Session, spec: JobSpec, net: NetSummary, *, tenant: str, limits: Settings
) -> None:
    """SpecInvalid naming the field when the job could never take its first step."""
    if net.params == 0:
        raise SpecInvalid.at("model", "has no parameters: there is nothing to train")
    # torch's cosine schedule works from lr - min_lr recursively, step by step: a floor
    # above the lr grows it every step instead (and one near the float maximum overflows).
    floor = getattr(spec.schedule, "min_lr", 0.0)
    if floor > spec.optimizer.lr:
        raise SpecInvalid.at(
            "schedule.min_lr",
            f"{floor} is above optimizer.lr {spec.optimizer.lr}: the schedule decays from "
            "the lr towards it",
        )
    batch = _largest_step(session, spec, tenant=tenant)
    distributed = spec.distributed
    # Ranks of one worker share its memory; each holds the net and its share of the batch.
    per_worker = -(-batch // distributed.nodes) if distributed.strategy == "ddp" else batch
    replicas = distributed.processes if distributed.strategy == "ddp" else 1
    needed = memory.training_bytes(net, per_worker, replicas=replicas)
    if needed <= limits.worker_memory_bytes:
        return
    per_sample = memory.activation_bytes_per_sample(net)
    state = memory.parameter_bytes(net) * replicas
    field = "model" if state > limits.worker_memory_bytes else "training.batch_size"
    raise SpecInvalid.at(
        field,
        f"training needs about {needed} bytes ({needed / GIB:.1f} GiB) on a worker: "
        f"{per_sample} bytes of activations per sample x {per_worker} samples per step + "
        f"{state} bytes of weights, gradients and optimizer state; a worker has "
        f"{limits.worker_memory_bytes} ({limits.worker_memory_bytes / GIB:.1f} GiB, "
        "TAAS_WORKER_MEMORY_BYTES): use a smaller batch or a smaller net",
    )


def _largest_step(session: Session, spec: JobSpec, *, tenant: str) -> int:
    """Samples in one step: the batch size, the training split for "full", the probe's
    smallest candidate for "auto" (the probe backs off from sizes that do not fit)."""
    batch = spec.training.batch_size
    if batch == "auto":
        return memory.AUTO_BATCH_FLOOR
    if isinstance(batch, int):
        return batch
    if isinstance(spec.dataset, SyntheticData):
        samples = spec.dataset.samples
    else:
        row = datasets.find(session, spec.dataset, tenant=tenant)
        samples = row.samples if row is not None else 0
    return max(1, math.ceil(samples * (1 - spec.training.split_fraction)))
