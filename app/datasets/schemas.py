from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.datasets.validation import Task
from app.spec.schemas import SyntheticData

Format = Literal["idx", "npz", "csv"]


@dataclass(frozen=True)
class UploadedFile:
    """One file part of a multipart upload: its stream and, when the client said, its size."""

    stream: BinaryIO
    size: int | None


@dataclass(frozen=True)
class DatasetUpload:
    """A whole upload as the router parsed it: form fields, and file parts by field name."""

    format: Format
    name: str
    task: Task
    label_column: str | None
    header: bool | None
    files: dict[str, UploadedFile]


class DatasetOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    format: str
    task: Task
    samples: int
    input_shape: list[int] = Field(description="One sample's shape, channels first for images.")
    classes: int | None = Field(description="Classification: labels are 0..classes-1.")
    targets: int | None = Field(description="Regression: values to predict per sample.")
    bytes: int
    sha256: str
    created_at: datetime


class DatasetPage(BaseModel):
    items: list[DatasetOut]
    next_cursor: str | None
    builtin: dict[str, SyntheticData] = Field(
        default_factory=lambda: {"synthetic": SyntheticData()},
        description="Datasets that need no upload, with their default options: use them as "
        '"dataset": "synthetic" or {"name": "synthetic", ...options}.',
    )
