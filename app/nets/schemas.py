from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.openapi import declared_as
from app.spec import memory
from app.spec.base import Strict
from app.spec.schemas import ID_PATTERN, MAX_BATCH_SIZE, SEED_JOB_EXAMPLE, ModelSpec, documented


class SummaryRequest(Strict):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        allow_inf_nan=False,
        json_schema_extra={
            "examples": [
                {
                    "model": SEED_JOB_EXAMPLE["model"],
                    "input_shape": [1, 28, 28],
                    "classes": 10,
                }
            ]
        },
    )

    model: ModelSpec
    dataset: str | None = Field(
        None, max_length=64, pattern=ID_PATTERN, description="Take the shapes from a dataset."
    )
    input_shape: (
        list[Annotated[int, documented(type="integer", minimum=1, maximum=65_536)]] | None
    ) = Field(None, min_length=1, max_length=4)
    classes: int | None = Field(
        None, ge=1, le=100_000, description="Classes, or regression targets: the outputs."
    )
    batch_size: int | None = Field(
        None,
        ge=1,
        le=MAX_BATCH_SIZE,
        description="Samples per step: with it, the answer estimates training_bytes.",
    )

    @model_validator(mode="after")
    def _one_source_of_shapes(self) -> Self:
        if (self.dataset is None) == (self.input_shape is None):
            raise ValueError("give either dataset or input_shape (with classes)")
        if self.input_shape is not None and any(not 1 <= d <= 65_536 for d in self.input_shape):
            raise ValueError("input_shape dimensions must be between 1 and 65536")
        return self


class LayerOut(BaseModel):
    index: int
    name: str
    type: str
    output_shape: list[int]
    params: int
    flops: int


class SummaryOut(BaseModel):
    input_shape: list[int]
    layers: list[LayerOut]
    params: int
    flops_per_sample: int
    model: Annotated[dict[str, Any], declared_as("ModelSpec")] = Field(
        description="The model as it would train: presets expanded."
    )
    activation_bytes_per_sample: int = Field(
        description="Estimated training memory per sample: the input and every output, kept "
        f"for the backward pass, x{memory.ACTIVATION_FACTOR} for their gradients (fp32)."
    )
    parameter_bytes: int = Field(
        description="Estimated memory of weights, gradients and optimizer state (fp32)."
    )
    training_bytes: int | None = Field(
        None,
        description="activation_bytes_per_sample x batch_size + parameter_bytes, when the "
        "request gives a batch_size; a job needing more than a worker has is refused.",
    )
