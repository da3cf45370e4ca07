"""JobSpec: the declarative training job a client POSTs, validated field by field.

Every model forbids unknown fields, so a typo (`"momentun": 0.9`) is a 422 naming the
field instead of a silently ignored option. Numeric bounds keep every value inside what
torch accepts, so a spec that validates here never fails for its numbers in the trainer.
"""

import re
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_LAYERS = 256
MAX_WIDTH = 65_536
MAX_EPOCHS = 10_000
MAX_BATCH_SIZE = 1_048_576
MAX_SEED = 2**31 - 1
MAX_SYNTHETIC_VALUES = 64_000_000  # samples x features: about 256 MB of float32

SEED_JOB_EXAMPLE: dict[str, Any] = {
    "name": "mnist-mlp",
    "dataset": "synthetic",
    "model": {
        "layers": [
            {"type": "flatten"},
            {"type": "linear", "out_features": 10, "activation": "relu"},
            {"type": "linear", "out_features": 10, "activation": "relu"},
            {"type": "linear", "out_features": 10},
        ]
    },
    "optimizer": {"name": "sgd", "lr": 0.01, "momentum": 0.9},
    "schedule": {"name": "constant"},
    "training": {
        "epochs": 10,
        "batch_size": 32,
        "val_fraction": 0.2,
        "seed": 0,
        "precision": "fp32",
        "compile": False,
        "target": {"metric": "val_accuracy", "value": 0.92},
    },
    "distributed": {"strategy": "none"},
    "init": None,
    "resources": {"device": "auto"},
    "priority": 0,
    "tags": ["example"],
}


class Strict(BaseModel):
    # NaN and Infinity parse as JSON numbers in Python but are no valid setting anywhere.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


Activation = Literal["relu", "tanh", "sigmoid", "gelu", "none"]


class FlattenLayer(Strict):
    type: Literal["flatten"]


class LinearLayer(Strict):
    type: Literal["linear"]
    out_features: int = Field(ge=1, le=MAX_WIDTH)
    activation: Activation = "none"
    bias: bool = True


class DropoutLayer(Strict):
    type: Literal["dropout"]
    p: float = Field(0.5, ge=0.0, lt=1.0)


Layer = Annotated[FlattenLayer | LinearLayer | DropoutLayer, Field(discriminator="type")]


class ModelSpec(Strict):
    layers: list[Layer] = Field(min_length=1, max_length=MAX_LAYERS)


class SyntheticData(Strict):
    """The built-in dataset: seeded Gaussian clusters, one per class, learnable but not trivial."""

    name: Literal["synthetic"] = "synthetic"
    samples: int = Field(2048, ge=16, le=1_000_000)
    classes: int = Field(10, ge=2, le=1000)
    input_shape: list[int] = Field(default_factory=lambda: [1, 28, 28], min_length=1, max_length=4)
    seed: int = Field(0, ge=0, le=MAX_SEED)

    @field_validator("input_shape")
    @classmethod
    def _positive_dims(cls, shape: list[int]) -> list[int]:
        if any(d < 1 or d > MAX_WIDTH for d in shape):
            raise ValueError(f"every dimension must be between 1 and {MAX_WIDTH}")
        return shape

    @model_validator(mode="after")
    def _bounded_size(self) -> Self:
        features = 1
        for d in self.input_shape:
            features *= d
        if features * self.samples > MAX_SYNTHETIC_VALUES:
            raise ValueError(f"samples x features must be at most {MAX_SYNTHETIC_VALUES}")
        return self


Lr = Annotated[float, Field(gt=0.0, le=100.0)]
WeightDecay = Annotated[float, Field(ge=0.0, le=10.0)]
Eps = Annotated[float, Field(gt=0.0, le=1.0)]
Beta = Annotated[float, Field(ge=0.0, lt=1.0)]


class Sgd(Strict):
    name: Literal["sgd"]
    lr: Lr
    momentum: float = Field(0.0, ge=0.0, lt=1.0)
    nesterov: bool = False
    weight_decay: WeightDecay = 0.0

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self) -> Self:
        if self.nesterov and self.momentum == 0.0:
            raise ValueError("nesterov needs momentum > 0")
        return self


class Adam(Strict):
    name: Literal["adam", "adamw"]
    lr: Lr
    betas: tuple[Beta, Beta] = (0.9, 0.999)
    eps: Eps = 1e-8
    weight_decay: WeightDecay = 0.0


class RmsProp(Strict):
    name: Literal["rmsprop"]
    lr: Lr
    alpha: Beta = 0.99
    momentum: float = Field(0.0, ge=0.0, lt=1.0)
    eps: Eps = 1e-8
    weight_decay: WeightDecay = 0.0


class Adagrad(Strict):
    name: Literal["adagrad"]
    lr: Lr
    eps: Eps = 1e-10
    weight_decay: WeightDecay = 0.0


Optimizer = Annotated[Sgd | Adam | RmsProp | Adagrad, Field(discriminator="name")]


class ConstantSchedule(Strict):
    name: Literal["constant"]


class StepSchedule(Strict):
    """Multiply the learning rate by `gamma` every `step_epochs` epochs."""

    name: Literal["step"]
    step_epochs: int = Field(1, ge=1, le=MAX_EPOCHS)
    gamma: float = Field(0.1, gt=0.0, le=1.0)


class CosineSchedule(Strict):
    """Cosine decay from the optimizer's lr to `min_lr` over the whole run, per step."""

    name: Literal["cosine"]
    min_lr: float = Field(0.0, ge=0.0)


class OneCycleSchedule(Strict):
    """Warm up to `max_lr` (default: the optimizer's lr) then anneal, per step."""

    name: Literal["onecycle"]
    max_lr: float | None = Field(None, gt=0.0, le=100.0)
    pct_start: float = Field(0.3, gt=0.0, lt=1.0)


class PlateauSchedule(Strict):
    """Multiply the lr by `factor` when `metric` has not improved for `patience` epochs."""

    name: Literal["plateau"]
    metric: Literal["val_loss", "val_accuracy", "train_loss"] = "val_loss"
    factor: float = Field(0.1, gt=0.0, lt=1.0)
    patience: int = Field(2, ge=0, le=MAX_EPOCHS)
    min_lr: float = Field(0.0, ge=0.0)


Schedule = Annotated[
    ConstantSchedule | StepSchedule | CosineSchedule | OneCycleSchedule | PlateauSchedule,
    Field(discriminator="name"),
]

Metric = Literal["val_accuracy", "val_loss", "train_loss"]


class Target(Strict):
    """Stop the job as soon as `metric` reaches `value` (accuracy: >=, losses: <=)."""

    metric: Metric = "val_accuracy"
    value: float

    @property
    def maximize(self) -> bool:
        return self.metric.endswith("accuracy")

    def reached(self, observed: float) -> bool:
        return observed >= self.value if self.maximize else observed <= self.value


class Training(Strict):
    epochs: int = Field(ge=1, le=MAX_EPOCHS)
    batch_size: int | Literal["full"] = Field(
        description='Samples per step, or "full" for full-batch gradient descent.'
    )
    val_fraction: float = Field(0.2, ge=0.0, le=0.9)
    seed: int = Field(0, ge=0, le=MAX_SEED)
    precision: Literal["fp32", "bf16", "fp16", "auto"] = "fp32"
    compile: bool = False
    normalize: Literal["standard", "none"] = Field(
        "standard",
        description="standard: zero mean and unit variance over the training split.",
    )
    target: Target | None = None

    @field_validator("batch_size")
    @classmethod
    def _batch_size_range(cls, value: int | str) -> int | str:
        if isinstance(value, int) and not 1 <= value <= MAX_BATCH_SIZE:
            raise ValueError(f'must be between 1 and {MAX_BATCH_SIZE}, or "full"')
        return value

    @model_validator(mode="after")
    def _validation_metrics_need_a_split(self) -> Self:
        if self.val_fraction == 0.0 and self.target and self.target.metric.startswith("val_"):
            raise ValueError(f"target {self.target.metric} needs val_fraction > 0")
        return self


class Distributed(Strict):
    strategy: Literal["none"] = "none"


class Resources(Strict):
    device: Literal["auto", "cpu", "cuda"] = "auto"


Tag = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
# Free text and ids: no control characters (Postgres cannot even store NUL in text).
NAME_PATTERN = r"^[^\x00-\x1f\x7f]+$"
ID_PATTERN = r"^[A-Za-z0-9_.:-]+$"


class JobSpec(Strict):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        allow_inf_nan=False,
        json_schema_extra={"examples": [SEED_JOB_EXAMPLE]},
    )

    name: str = Field("job", min_length=1, max_length=200, pattern=NAME_PATTERN)
    dataset: str | SyntheticData = Field(
        description='A dataset id from POST /v1/datasets, "synthetic", or a synthetic dataset.'
    )
    model: ModelSpec
    optimizer: Optimizer
    schedule: Schedule = ConstantSchedule(name="constant")
    training: Training
    distributed: Distributed = Distributed()
    init: None = Field(None, description="Warm starts from checkpoints are not available yet.")
    resources: Resources = Resources()
    priority: int = Field(0, ge=-100, le=100)
    tags: list[Tag] = Field(default_factory=list, max_length=32)

    @field_validator("dataset", mode="before")
    @classmethod
    def _synthetic_by_name(cls, value: object) -> object:
        return SyntheticData() if value == "synthetic" else value

    @field_validator("dataset")
    @classmethod
    def _dataset_id_shape(cls, value: str | SyntheticData) -> str | SyntheticData:
        if isinstance(value, str) and not (len(value) <= 64 and re.fullmatch(ID_PATTERN, value)):
            raise ValueError('must be a dataset id, "synthetic" or a synthetic dataset object')
        return value

    @model_validator(mode="after")
    def _schedule_metric_needs_a_split(self) -> Self:
        if (
            isinstance(self.schedule, PlateauSchedule)
            and self.schedule.metric.startswith("val_")
            and self.training.val_fraction == 0.0
        ):
            raise ValueError(
                f"schedule.metric {self.schedule.metric} needs training.val_fraction > 0"
            )
        return self
