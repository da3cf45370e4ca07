"""JobSpec validation: the seed example, strictness, cross-field rules and every option's home."""

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from app.spec.optimization import (
    Adagrad,
    Adam,
    ConstantSchedule,
    CosineSchedule,
    OneCycleSchedule,
    PlateauSchedule,
    RmsProp,
    Sgd,
    StepSchedule,
)
from app.spec.schemas import (
    MAX_BATCH_SIZE,
    MAX_SYNTHETIC_VALUES,
    SEED_JOB_EXAMPLE,
    JobSpec,
    SyntheticData,
)

Loc = tuple[str | int, ...]


def seed_job(**sections: Any) -> dict[str, Any]:
    """The seed example with whole top-level sections replaced."""
    job = copy.deepcopy(SEED_JOB_EXAMPLE)
    job.update(sections)
    return job


def seed_training(**fields: Any) -> dict[str, Any]:
    """The seed example's training section with some fields replaced (None removes one)."""
    training = copy.deepcopy(SEED_JOB_EXAMPLE["training"])
    assert isinstance(training, dict)
    training.update(fields)
    return {key: value for key, value in training.items() if value is not None}


def rejected(job: dict[str, Any]) -> list[tuple[Loc, str, str]]:
    """Validate `job`, expecting failure; the errors as (location, type, message)."""
    with pytest.raises(ValidationError) as caught:
        JobSpec.model_validate(job)
    return [(tuple(error["loc"]), error["type"], error["msg"]) for error in caught.value.errors()]


def rejected_locs(job: dict[str, Any]) -> list[Loc]:
    return [loc for loc, _, _ in rejected(job)]


def test_seed_example_validates_into_its_declared_values() -> None:
    spec = JobSpec.model_validate(SEED_JOB_EXAMPLE)

    assert spec.name == "mnist-mlp"
    assert isinstance(spec.optimizer, Sgd)
    assert spec.optimizer.momentum == 0.9
    assert isinstance(spec.schedule, ConstantSchedule)
    assert [layer.type for layer in spec.model.layers] == ["flatten", "linear", "linear", "linear"]
    assert spec.training.target is not None
    assert spec.training.target.value == 0.92
    assert spec.tags == ["example"]


def test_seed_example_is_the_schema_example() -> None:
    schema = JobSpec.model_json_schema()

    assert schema["examples"] == [SEED_JOB_EXAMPLE]


def test_synthetic_string_becomes_default_synthetic_data() -> None:
    spec = JobSpec.model_validate(seed_job(dataset="synthetic"))

    assert spec.dataset == SyntheticData()
    assert isinstance(spec.dataset, SyntheticData)
    assert spec.dataset.input_shape == [1, 28, 28]
    assert spec.dataset.classes == 10


def test_synthetic_object_keeps_its_options() -> None:
    dataset = {"name": "synthetic", "samples": 64, "classes": 3, "input_shape": [8], "seed": 5}

    spec = JobSpec.model_validate(seed_job(dataset=dataset))

    assert spec.dataset == SyntheticData(samples=64, classes=3, input_shape=[8], seed=5)


def test_dataset_id_string_is_kept_as_an_id() -> None:
    spec = JobSpec.model_validate(seed_job(dataset="ds_0123456789"))

    assert spec.dataset == "ds_0123456789"


@pytest.mark.parametrize("dataset", ["", "x" * 65])
def test_dataset_id_outside_length_range_is_rejected(dataset: str) -> None:
    assert rejected_locs(seed_job(dataset=dataset))


@pytest.mark.parametrize(
    ("job", "loc"),
    [
        (
            seed_job(optimizer={"name": "sgd", "lr": 0.01, "momentun": 0.9}),
            ("optimizer", "sgd", "momentun"),
        ),
        (seed_job(epochs=3), ("epochs",)),
        (seed_job(training=seed_training(lr=0.1)), ("training", "lr")),
        (seed_job(schedule={"name": "constant", "gamma": 0.5}), ("schedule", "constant", "gamma")),
        (
            seed_job(model={"layers": [{"type": "flatten", "dim": 1}]}),
            ("model", "layers", 0, "flatten", "dim"),
        ),
        (seed_job(resources={"device": "cpu", "gpus": 1}), ("resources", "gpus")),
    ],
    ids=["optimizer", "top-level", "training", "schedule", "layer", "resources"],
)
def test_unknown_field_is_rejected_at_its_location(job: dict[str, Any], loc: Loc) -> None:
    errors = rejected(job)

    assert (loc, "extra_forbidden", "Extra inputs are not permitted") in errors


def test_nesterov_without_momentum_is_rejected() -> None:
    errors = rejected(seed_job(optimizer={"name": "sgd", "lr": 0.01, "nesterov": True}))

    assert [(loc, kind) for loc, kind, _ in errors] == [(("optimizer", "sgd"), "value_error")]
    assert "nesterov needs momentum" in errors[0][2]


def test_nesterov_with_momentum_is_accepted() -> None:
    job = seed_job(optimizer={"name": "sgd", "lr": 0.01, "momentum": 0.9, "nesterov": True})

    spec = JobSpec.model_validate(job)

    assert isinstance(spec.optimizer, Sgd)
    assert spec.optimizer.nesterov


@pytest.mark.parametrize("batch_size", ["full", "auto", 1, 32, MAX_BATCH_SIZE])
def test_batch_size_full_or_in_range_is_accepted(batch_size: int | str) -> None:
    spec = JobSpec.model_validate(seed_job(training=seed_training(batch_size=batch_size)))

    assert spec.training.batch_size == batch_size


@pytest.mark.parametrize("batch_size", [0, -1, MAX_BATCH_SIZE + 1, "half", "FULL", 1.5])
def test_batch_size_outside_range_or_unknown_word_is_rejected(batch_size: object) -> None:
    locs = rejected_locs(seed_job(training=seed_training(batch_size=batch_size)))

    assert locs
    assert all(loc[:2] == ("training", "batch_size") for loc in locs)


@pytest.mark.parametrize(
    ("training", "resources"),
    [
        ({"compile": "auto", "channels_last": True, "lr_reference_batch": 32}, {"threads": 1}),
        ({"compile": True, "channels_last": "auto", "precision": "auto"}, {"threads": 256}),
    ],
)
def test_speed_levers_are_accepted(training: dict[str, Any], resources: dict[str, Any]) -> None:
    spec = JobSpec.model_validate(seed_job(training=seed_training(**training), resources=resources))

    assert spec.training.model_dump(include=set(training)) == training
    assert spec.resources.threads == resources["threads"]


@pytest.mark.parametrize(
    ("section", "field", "value"),
    [
        ("training", "compile", "always"),
        ("training", "channels_last", "sometimes"),
        ("training", "lr_reference_batch", 0),
        ("training", "lr_reference_batch", MAX_BATCH_SIZE + 1),
        ("resources", "threads", 0),
        ("resources", "threads", 257),
    ],
)
def test_speed_levers_out_of_range_are_rejected_by_path(
    section: str, field: str, value: object
) -> None:
    job = seed_job()
    job[section] = {**job.get(section, {}), field: value}

    locs = rejected_locs(job)

    assert locs
    assert all(loc[:2] == (section, field) for loc in locs)


@pytest.mark.parametrize("metric", ["val_accuracy", "val_loss"])
def test_validation_target_without_validation_split_is_rejected(metric: str) -> None:
    training = seed_training(val_fraction=0.0, target={"metric": metric, "value": 0.5})

    errors = rejected(seed_job(training=training))

    assert [loc for loc, _, _ in errors] == [("training",)]
    assert "val_fraction > 0" in errors[0][2]


def test_train_loss_target_without_validation_split_is_accepted() -> None:
    training = seed_training(val_fraction=0.0, target={"metric": "train_loss", "value": 0.1})

    spec = JobSpec.model_validate(seed_job(training=training))

    assert spec.training.val_fraction == 0.0


def test_no_target_without_validation_split_is_accepted() -> None:
    spec = JobSpec.model_validate(seed_job(training=seed_training(val_fraction=0.0, target=None)))

    assert spec.training.target is None


@pytest.mark.parametrize(
    ("metric", "value", "observed", "reached"),
    [
        ("val_accuracy", 0.9, 0.9, True),
        ("val_accuracy", 0.9, 0.89, False),
        ("val_loss", 0.3, 0.3, True),
        ("val_loss", 0.3, 0.31, False),
        ("train_loss", 0.3, 0.1, True),
    ],
)
def test_target_is_reached_at_its_value_in_the_metric_direction(
    metric: str, value: float, observed: float, reached: bool
) -> None:
    spec = JobSpec.model_validate(
        seed_job(training=seed_training(target={"metric": metric, "value": value}))
    )

    assert spec.training.target is not None
    assert spec.training.target.reached(observed) is reached


def test_plateau_on_validation_metric_without_validation_split_is_rejected() -> None:
    job = seed_job(
        schedule={"name": "plateau", "metric": "val_loss"},
        training=seed_training(val_fraction=0.0, target=None),
    )

    errors = rejected(job)

    assert [loc for loc, _, _ in errors] == [()]
    assert "schedule.metric val_loss" in errors[0][2]


OPTIMIZERS: list[tuple[dict[str, Any], type]] = [
    ({"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-4}, Sgd),
    ({"name": "adam", "lr": 1e-3, "betas": [0.8, 0.99], "eps": 1e-6, "weight_decay": 0.1}, Adam),
    ({"name": "adamw", "lr": 1e-3, "betas": [0.9, 0.95], "eps": 1e-8, "weight_decay": 0.01}, Adam),
    (
        {
            "name": "rmsprop",
            "lr": 1e-3,
            "alpha": 0.9,
            "momentum": 0.5,
            "eps": 1e-7,
            "weight_decay": 0.0,
        },
        RmsProp,
    ),
    ({"name": "adagrad", "lr": 0.01, "eps": 1e-9, "weight_decay": 0.001}, Adagrad),
]


@pytest.mark.parametrize(("optimizer", "model"), OPTIMIZERS, ids=[o["name"] for o, _ in OPTIMIZERS])
def test_each_optimizer_validates_with_all_its_options(
    optimizer: dict[str, Any], model: type
) -> None:
    spec = JobSpec.model_validate(seed_job(optimizer=optimizer))

    assert isinstance(spec.optimizer, model)
    dumped = spec.optimizer.model_dump()
    if "betas" in optimizer:
        dumped["betas"] = list(dumped["betas"])
    assert dumped == {key: optimizer.get(key, value) for key, value in dumped.items()}
    assert set(optimizer) <= set(dumped)


@pytest.mark.parametrize(
    ("optimizer", "foreign"),
    [
        ({"name": "adam", "lr": 1e-3, "momentum": 0.9}, "momentum"),
        ({"name": "adamw", "lr": 1e-3, "nesterov": True}, "nesterov"),
        ({"name": "sgd", "lr": 0.1, "betas": [0.9, 0.999]}, "betas"),
        ({"name": "sgd", "lr": 0.1, "eps": 1e-8}, "eps"),
        ({"name": "rmsprop", "lr": 1e-3, "betas": [0.9, 0.999]}, "betas"),
        ({"name": "adagrad", "lr": 0.01, "momentum": 0.9}, "momentum"),
        ({"name": "adagrad", "lr": 0.01, "alpha": 0.9}, "alpha"),
    ],
)
def test_optimizer_rejects_another_optimizers_option(
    optimizer: dict[str, Any], foreign: str
) -> None:
    errors = rejected(seed_job(optimizer=optimizer))

    assert [(loc, kind) for loc, kind, _ in errors] == [
        (("optimizer", optimizer["name"], foreign), "extra_forbidden")
    ]


@pytest.mark.parametrize("lr", [0.0, -0.1, 100.5])
def test_optimizer_lr_outside_range_is_rejected(lr: float) -> None:
    locs = rejected_locs(seed_job(optimizer={"name": "adam", "lr": lr}))

    assert locs == [("optimizer", "adam", "lr")]


def test_unknown_optimizer_name_is_rejected() -> None:
    locs = rejected_locs(seed_job(optimizer={"name": "lion", "lr": 1e-3}))

    assert locs == [("optimizer",)]


SCHEDULES: list[tuple[dict[str, Any], type]] = [
    ({"name": "constant"}, ConstantSchedule),
    ({"name": "step", "step_epochs": 3, "gamma": 0.5}, StepSchedule),
    ({"name": "cosine", "min_lr": 1e-5}, CosineSchedule),
    ({"name": "onecycle", "max_lr": 0.5, "pct_start": 0.25}, OneCycleSchedule),
    (
        {"name": "plateau", "metric": "val_accuracy", "factor": 0.5, "patience": 0, "min_lr": 1e-6},
        PlateauSchedule,
    ),
]


@pytest.mark.parametrize(("schedule", "model"), SCHEDULES, ids=[s["name"] for s, _ in SCHEDULES])
def test_each_schedule_validates_with_all_its_options(
    schedule: dict[str, Any], model: type
) -> None:
    spec = JobSpec.model_validate(seed_job(schedule=schedule))

    assert isinstance(spec.schedule, model)
    assert spec.schedule.model_dump() == schedule


@pytest.mark.parametrize(
    ("schedule", "foreign"),
    [
        ({"name": "constant", "min_lr": 0.0}, "min_lr"),
        ({"name": "step", "min_lr": 0.0}, "min_lr"),
        ({"name": "cosine", "gamma": 0.5}, "gamma"),
        ({"name": "onecycle", "patience": 1}, "patience"),
        ({"name": "plateau", "pct_start": 0.3}, "pct_start"),
        ({"name": "plateau", "step_epochs": 2}, "step_epochs"),
    ],
)
def test_schedule_rejects_another_schedules_option(schedule: dict[str, Any], foreign: str) -> None:
    errors = rejected(seed_job(schedule=schedule))

    assert [(loc, kind) for loc, kind, _ in errors] == [
        (("schedule", schedule["name"], foreign), "extra_forbidden")
    ]


def test_schedule_defaults_to_constant_when_omitted() -> None:
    job = seed_job()
    del job["schedule"]

    spec = JobSpec.model_validate(job)

    assert spec.schedule == ConstantSchedule(name="constant")


@pytest.mark.parametrize("tag", ["example", "team:vision", "v1.2_rc-3", "A" * 64])
def test_tag_matching_pattern_is_accepted(tag: str) -> None:
    spec = JobSpec.model_validate(seed_job(tags=[tag]))

    assert spec.tags == [tag]


@pytest.mark.parametrize("tag", ["", "has space", "slash/tag", "émoji", "tag\n", "A" * 65])
def test_tag_outside_pattern_or_length_is_rejected(tag: str) -> None:
    assert rejected_locs(seed_job(tags=[tag])) == [("tags", 0)]


def test_more_than_32_tags_are_rejected() -> None:
    assert rejected_locs(seed_job(tags=[f"t{i}" for i in range(33)])) == [("tags",)]


def test_synthetic_data_at_size_cap_is_accepted() -> None:
    features = MAX_SYNTHETIC_VALUES // 1_000_000

    data = SyntheticData(samples=1_000_000, input_shape=[features])

    assert data.samples * features == MAX_SYNTHETIC_VALUES


def test_synthetic_data_over_size_cap_is_rejected() -> None:
    features = MAX_SYNTHETIC_VALUES // 1_000_000 + 1
    job = seed_job(dataset={"name": "synthetic", "samples": 1_000_000, "input_shape": [features]})

    errors = rejected(job)

    # The union reports both branches: not an id string, and the object over the cap.
    assert all(loc[0] == "dataset" for loc, _, _ in errors)
    assert any(str(MAX_SYNTHETIC_VALUES) in message for _, _, message in errors)


@pytest.mark.parametrize("input_shape", [[], [0], [1, -3], [1, 2, 3, 4, 5]])
def test_synthetic_input_shape_with_bad_rank_or_dimension_is_rejected(
    input_shape: list[int],
) -> None:
    with pytest.raises(ValidationError):
        SyntheticData(input_shape=input_shape)


def test_init_other_than_none_is_rejected() -> None:
    assert rejected_locs(seed_job(init="ckpt_123")) == [("init",)]


def test_ddp_spec_validates_with_its_world_size() -> None:
    spec = JobSpec.model_validate(
        seed_job(distributed={"strategy": "ddp", "processes": 4, "backend": "gloo"})
    )

    assert spec.distributed.world_size == 4
    assert JobSpec.model_validate(seed_job()).distributed.world_size == 1


@pytest.mark.parametrize("batch_size", [30, 33])
def test_ddp_batch_size_that_does_not_split_across_processes_is_rejected(batch_size: int) -> None:
    job = seed_job(
        distributed={"strategy": "ddp", "processes": 4},
        training=seed_training(batch_size=batch_size),
    )

    errors = rejected(job)

    assert len(errors) == 1
    assert f"batch_size {batch_size} must divide evenly across 4" in errors[0][2]


def test_ddp_full_batch_is_accepted() -> None:
    job = seed_job(
        distributed={"strategy": "ddp", "processes": 3}, training=seed_training(batch_size="full")
    )

    assert JobSpec.model_validate(job).distributed.processes == 3


@pytest.mark.parametrize(
    "distributed",
    [
        {"strategy": "none", "processes": 2},
        {"strategy": "none", "backend": "gloo"},
        {"strategy": "ddp", "processes": 0},
        {"strategy": "ddp", "processes": 65},
        {"strategy": "ddp", "backend": "mpi"},
        {"strategy": "fsdp"},
    ],
)
def test_distributed_options_outside_ddp_or_range_are_rejected(
    distributed: dict[str, Any],
) -> None:
    assert rejected_locs(seed_job(distributed=distributed))


def test_nccl_on_cpu_is_rejected() -> None:
    job = seed_job(
        distributed={"strategy": "ddp", "processes": 2, "backend": "nccl"},
        resources={"device": "cpu"},
    )

    assert "nccl" in rejected(job)[0][2]


def test_ddp_batch_size_auto_is_rejected() -> None:
    job = seed_job(
        distributed={"strategy": "ddp", "processes": 2},
        training=seed_training(batch_size="auto"),
    )

    errors = rejected(job)

    assert len(errors) == 1
    assert 'batch_size "auto" is for one process' in errors[0][2]
