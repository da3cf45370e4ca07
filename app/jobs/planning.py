"""Planning a submitted spec against the tenant's data: everything that can fail before a
job is queued fails here, with the field that is wrong."""

import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from app.checkpoints import service as checkpoints
from app.config import Settings
from app.datasets import service as datasets
from app.errors import SpecInvalid
from app.jobs import feasibility, repository
from app.spec import JobSpec, NetSummary, SyntheticData, compat, presets, summarize
from app.spec.optimization import CLASSIFICATION_ONLY, REGRESSION_ONLY, PlateauSchedule


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
