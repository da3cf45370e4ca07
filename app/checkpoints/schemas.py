from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field


class TensorOut(BaseModel):
    dtype: str = Field(description="safetensors dtype: F32, BF16, I64, ...")
    shape: list[int]


class CheckpointOut(BaseModel):
    id: str
    job_id: str | None = Field(description="The job that saved it; null for an upload.")
    name: str
    kind: Literal["epoch", "stop", "final", "upload"] = Field(
        description='Saved by a job: "epoch", "stop" (taken mid-epoch as the job was stopped) '
        'or "final"; else "upload".'
    )
    epoch: int | None
    step: int | None
    metrics: dict[str, Any] = Field(description="The job's metrics when it was saved.")
    tensors: dict[str, TensorOut] = Field(description="Every tensor by name, in file order.")
    params: int = Field(description="Number of values in all tensors together.")
    bytes: int = Field(description="Size of the safetensors file.")
    sha256: str = Field(description="Of the safetensors file, as downloaded.")
    created_at: datetime


class CheckpointPage(BaseModel):
    items: list[CheckpointOut]
    next_cursor: str | None
