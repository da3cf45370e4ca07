"""JobSpec: the declarative training job a client POSTs, validated field by field.

Every model forbids unknown fields, so a typo (`"momentun": 0.9`) is a 422 naming the
field instead of a silently ignored option. Numeric bounds keep every value inside what
torch accepts, so a spec that validates here never fails for its numbers in the trainer.
"""

import re
from typing import Annotated, Any, Literal, Self

from pydantic import ConfigDict, Field, WithJsonSchema, field_validator, model_validator

from app.spec.base import MAX_EPOCHS, Strict
from app.spec.layers import MAX_RESIDUAL_DEPTH, MAX_WIDTH, Layer, too_deep
from app.spec.optimization import (
    ConstantSchedule,
    Metric,
    Optimizer,
    PlateauSchedule,
    Schedule,
    Target,
)

MAX_LAYERS = 256
# Free text and ids: no control characters (Postgres cannot even store NUL in text).
NAME_PATTERN = r"^[^\x00-\x1f\x7f]+$"
ID_PATTERN = r"^[A-Za-z0-9_.:-]+$"
MAX_BATCH_SIZE = 1_048_576
MAX_SEED = 2**31 - 1
MAX_PROCESSES = 64
MAX_NODES = 64
MAX_SYNTHETIC_VALUES = 64_000_000  # samples x features: about 256 MB of float32


def documented(**schema: Any) -> WithJsonSchema:
    """The bounds a validator below enforces, stated in the schema too, so a request the
    document allows is one the API accepts (the validator keeps its own message)."""
    return WithJsonSchema(schema)


Dim = Annotated[int, documented(type="integer", minimum=1, maximum=MAX_WIDTH)]
DatasetId = Annotated[str, documented(type="string", maxLength=64, pattern=ID_PATTERN)]

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


Preset = Literal["mlp", "cnn", "resnet"]


class ModelSpec(Strict):
    """Layers, or a preset expanded for the dataset. A submitted job records both: the
    preset it asked for and the layers it expanded to, which are what trains."""

    layers: list[Layer] | None = Field(None, min_length=1, max_length=MAX_LAYERS)
    preset: Preset | None = Field(
        None, description="mlp, cnn (small VGG-like) or resnet (ResNet-8/20 style)."
    )
    width: int | None = Field(
        None, ge=1, le=4096, description="Preset width (mlp: units; cnn, resnet: channels)."
    )
    depth: int | None = Field(
        None,
        ge=1,
        le=16,
        description="Preset depth (mlp: hidden layers; cnn: stages; resnet: blocks per stage).",
    )

    @field_validator("layers", mode="before")
    @classmethod
    def _nesting_within_limit(cls, layers: object) -> object:
        # Before validation: pydantic itself recurses once per level of the raw JSON.
        deepest = too_deep(layers, "model.layers")
        if deepest is not None:
            raise ValueError(
                f"residual blocks nest at most {MAX_RESIDUAL_DEPTH} deep; the one at "
                f"{deepest} is nested {MAX_RESIDUAL_DEPTH + 1} deep"
            )
        return layers

    @model_validator(mode="after")
    def _layers_or_preset(self) -> Self:
        if self.layers is None and self.preset is None:
            raise ValueError("give layers or a preset")
        if self.preset is None and (self.width is not None or self.depth is not None):
            raise ValueError("width and depth belong to a preset")
        return self


class SyntheticData(Strict):
    """The built-in dataset: seeded Gaussian clusters, one per class, learnable but not trivial."""

    name: Literal["synthetic"] = "synthetic"
    task: Literal["classification", "regression"] = "classification"
    samples: int = Field(2048, ge=16, le=1_000_000)
    classes: int = Field(10, ge=2, le=1000, description="Classification only.")
    targets: int = Field(1, ge=1, le=1000, description="Regression only: values per sample.")
    input_shape: list[Dim] = Field(default_factory=lambda: [1, 28, 28], min_length=1, max_length=4)
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


# The defaults of a job that says nothing about training: Keras's `fit` batch, and enough
# epochs for a small net to get near its accuracy on MNIST-sized data.
DEFAULT_EPOCHS = 10
DEFAULT_BATCH_SIZE = 32


class Training(Strict):
    epochs: int = Field(DEFAULT_EPOCHS, ge=1, le=MAX_EPOCHS)
    batch_size: (
        Annotated[int, documented(type="integer", minimum=1, maximum=MAX_BATCH_SIZE)]
        | Literal["full", "auto"]
    ) = Field(
        DEFAULT_BATCH_SIZE,
        description='Samples per step; "full" for full-batch gradient descent; "auto" to '
        "measure candidate sizes on the worker with a short probe and take the smallest "
        "within 10% of the best throughput (on CUDA, among those that fit in memory).",
    )
    lr_reference_batch: int | None = Field(
        None,
        ge=1,
        le=MAX_BATCH_SIZE,
        description="The batch size the optimizer's lr was tuned for: the lr then scales "
        "linearly with the batch actually used (lr x batch / lr_reference_batch).",
    )
    val_fraction: float = Field(
        0.2, ge=0.0, le=0.9, description="Held out for validation (0 with a val_dataset)."
    )
    val_dataset: str | None = Field(
        None,
        max_length=64,
        pattern=ID_PATTERN,
        description="Validate on this dataset instead of a split of the training one.",
    )
    seed: int = Field(0, ge=0, le=MAX_SEED)
    precision: Literal["fp32", "bf16", "fp16", "auto"] = Field(
        "fp32",
        description="Autocast dtype. auto: bf16 on GPUs and CPUs with native bf16 (AMX), "
        "else fp32; fp16 adds a gradient scaler on CUDA.",
    )
    compile: bool | Literal["auto"] = Field(
        False,
        description="torch.compile the net. auto: only on CUDA and only when the job has "
        "enough steps to pay back the compile time (reported as timings.compile_s).",
    )
    channels_last: bool | Literal["auto"] = Field(
        "auto",
        description="Channels-last memory format for conv nets. auto: on CUDA for nets with "
        "2-D convolutions.",
    )
    normalize: Literal["auto", "standard", "scale", "none"] = Field(
        "auto",
        description="standard: each feature to zero mean and unit variance over the training "
        "data; scale: to [0, 1] (uint8 images / 255); none: as stored; auto: scale for uint8 "
        "images, standard for everything else.",
    )
    target: Target | None = None

    @field_validator("batch_size")
    @classmethod
    def _batch_size_range(cls, value: int | str) -> int | str:
        if isinstance(value, int) and not 1 <= value <= MAX_BATCH_SIZE:
            raise ValueError(f'must be between 1 and {MAX_BATCH_SIZE}, or "full"')
        return value

    @model_validator(mode="after")
    def _one_source_of_validation(self) -> Self:
        explicit_fraction = "val_fraction" in self.model_fields_set and self.val_fraction > 0
        if self.val_dataset is not None and explicit_fraction:
            raise ValueError("give val_fraction or val_dataset, not both")
        if not self.validates and self.target and self.target.metric.startswith("val_"):
            raise ValueError(f"target {self.target.metric} needs val_fraction > 0 or a val_dataset")
        return self

    @property
    def validates(self) -> bool:
        return self.val_dataset is not None or self.val_fraction > 0

    @property
    def split_fraction(self) -> float:
        """The fraction of the training dataset held out (none when a val_dataset is given)."""
        return 0.0 if self.val_dataset is not None else self.val_fraction


class Init(Strict):
    """Start from a checkpoint's weights instead of a random initialisation."""

    checkpoint: str = Field(max_length=64, pattern=ID_PATTERN, description="A checkpoint id.")
    freeze: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=list,
        max_length=256,
        description='Parameter name prefixes ("1." or "1.weight") that are not trained.',
    )
    strict: bool = Field(
        True,
        description="Every tensor must match by name and shape; false loads those that do "
        "and initialises the rest (e.g. a new head for another class count).",
    )
    resume: bool = Field(
        False,
        description="Continue the checkpoint's job: restore optimizer, schedule, RNG, epoch "
        "and step too (a job's own checkpoint, not uploaded weights).",
    )

    @model_validator(mode="after")
    def _resume_is_strict(self) -> Self:
        if self.resume and not self.strict:
            raise ValueError("resume needs strict: the net must be the checkpoint's")
        return self


class CheckpointPolicy(Strict):
    every_epochs: int = Field(1, ge=1, le=MAX_EPOCHS, description="Save every this many epochs.")
    keep: Literal["last", "best", "last_and_best", "all"] = Field(
        "last_and_best", description="Which epoch checkpoints stay; the final weights always do."
    )
    metric: Metric | None = Field(
        None, description="What `best` means; default: the target's metric, else validation."
    )


class Distributed(Strict):
    """Data-parallel training (torch DistributedDataParallel): `processes` ranks, each
    training on an equal share of every batch and of the data."""

    strategy: Literal["none", "ddp"] = "none"
    processes: int = Field(
        1, ge=1, le=MAX_PROCESSES, description="Ranks on each worker (one per GPU on cuda)."
    )
    nodes: int = Field(
        1, ge=1, le=MAX_NODES, description="Workers that train the job together (a gang)."
    )
    backend: Literal["auto", "gloo", "nccl"] = Field(
        "auto", description="auto: nccl on cuda, gloo on cpu."
    )

    @model_validator(mode="after")
    def _options_need_ddp(self) -> Self:
        if self.strategy == "none" and (
            self.processes != 1 or self.nodes != 1 or self.backend != "auto"
        ):
            raise ValueError('processes, nodes and backend need strategy "ddp"')
        return self

    @property
    def world_size(self) -> int:
        return self.processes * self.nodes if self.strategy == "ddp" else 1


class Resources(Strict):
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int | None = Field(
        None,
        ge=1,
        le=256,
        description="CPU threads for the trainer's kernels (default: the worker's cores).",
    )


Tag = Annotated[str, Field(min_length=1, max_length=64, pattern=ID_PATTERN)]


class JobSpec(Strict):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        allow_inf_nan=False,
        json_schema_extra={"examples": [SEED_JOB_EXAMPLE]},
    )

    name: str = Field("job", min_length=1, max_length=200, pattern=NAME_PATTERN)
    dataset: DatasetId | SyntheticData = Field(
        description='A dataset id from POST /v1/datasets, "synthetic", or a synthetic dataset.'
    )
    model: ModelSpec
    optimizer: Optimizer
    schedule: Schedule = ConstantSchedule(name="constant")
    training: Training = Field(default_factory=Training)
    distributed: Distributed = Distributed()
    init: Init | None = None
    checkpoint: CheckpointPolicy = CheckpointPolicy()
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
    def _batch_splits_across_ranks(self) -> Self:
        # batch_size is the global batch, so a DDP job is comparable to its one-process twin.
        ranks, batch = self.distributed.world_size, self.training.batch_size
        if batch == "auto" and ranks > 1:
            # Each rank would measure its own answer; ranks must agree on every step.
            raise ValueError(
                'training.batch_size "auto" is for one process: give a DDP job a number'
            )
        if isinstance(batch, int) and batch % ranks:
            raise ValueError(
                f"training.batch_size {batch} must divide evenly across "
                f"{ranks} distributed processes"
            )
        if self.distributed.backend == "nccl" and self.resources.device == "cpu":
            raise ValueError('distributed.backend "nccl" needs resources.device "cuda" or "auto"')
        return self

    @model_validator(mode="after")
    def _schedule_metric_needs_a_split(self) -> Self:
        if (
            isinstance(self.schedule, PlateauSchedule)
            and self.schedule.metric.startswith("val_")
            and not self.training.validates
        ):
            raise ValueError(
                f"schedule.metric {self.schedule.metric} needs training.val_fraction > 0 "
                "or a training.val_dataset"
            )
        return self
