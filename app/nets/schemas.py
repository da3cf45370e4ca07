from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.spec.base import Strict
from app.spec.schemas import ID_PATTERN, SEED_JOB_EXAMPLE, ModelSpec


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
    input_shape: list[int] | None = Field(None, min_length=1, max_length=4)
    classes: int | None = Field(
        None, ge=1, le=100_000, description="Classes, or regression targets: the outputs."
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
    model: dict[str, Any] = Field(description="The model as it would train: presets expanded.")
