"""How a job optimizes: its optimizer, its learning-rate schedule, and the target metric
value it trains to."""

from typing import Annotated, Literal, Self

from pydantic import Field, model_validator
from typing_extensions import TypeAliasType

from app.spec.base import MAX_EPOCHS, Pair, Strict

MAX_LR = 100.0
Lr = Annotated[float, Field(gt=0.0, le=MAX_LR)]
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
    betas: Pair[tuple[Beta, Beta]] = (0.9, 0.999)
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


Optimizer = TypeAliasType(
    "Optimizer", Annotated[Sgd | Adam | RmsProp | Adagrad, Field(discriminator="name")]
)


Metric = TypeAliasType("Metric", Literal["val_accuracy", "val_loss", "val_mae", "train_loss"])
CLASSIFICATION_ONLY = frozenset({"val_accuracy"})
REGRESSION_ONLY = frozenset({"val_mae"})


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
    min_lr: float = Field(0.0, ge=0.0, le=MAX_LR, description="At most the optimizer's lr.")


class OneCycleSchedule(Strict):
    """Warm up to `max_lr` (default: the optimizer's lr) then anneal, per step."""

    name: Literal["onecycle"]
    max_lr: float | None = Field(None, gt=0.0, le=100.0)
    pct_start: float = Field(0.3, gt=0.0, lt=1.0)


class PlateauSchedule(Strict):
    """Multiply the lr by `factor` when `metric` has not improved for `patience` epochs."""

    name: Literal["plateau"]
    metric: Metric = "val_loss"
    factor: float = Field(0.1, gt=0.0, lt=1.0)
    patience: int = Field(2, ge=0, le=MAX_EPOCHS)
    min_lr: float = Field(0.0, ge=0.0, le=MAX_LR, description="At most the optimizer's lr.")


Schedule = TypeAliasType(
    "Schedule",
    Annotated[
        ConstantSchedule | StepSchedule | CosineSchedule | OneCycleSchedule | PlateauSchedule,
        Field(discriminator="name"),
    ],
)


def maximized(metric: str) -> bool:
    """Accuracy is better higher; losses and errors are better lower."""
    return metric.endswith("accuracy")


class Target(Strict):
    """Stop the job as soon as `metric` reaches `value` (accuracy: >=, losses: <=)."""

    metric: Metric = "val_accuracy"
    value: float

    @property
    def maximize(self) -> bool:
        return maximized(self.metric)

    def reached(self, observed: float) -> bool:
        return observed >= self.value if self.maximize else observed <= self.value
