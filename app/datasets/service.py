"""Datasets: validate an upload, store its arrays, record what it holds."""

import hashlib
from typing import BinaryIO

import numpy as np
from sqlalchemy.orm import Session

from app.datasets import repository
from app.datasets.idx import read_idx_dataset
from app.errors import DatasetNotFound, UploadInvalid
from app.ids import new_id
from app.orm import Dataset
from app.storage import Storage

MIN_SAMPLES = 2
MIN_CLASSES = 2


def find(session: Session, dataset_id: str) -> Dataset | None:
    return repository.get(session, dataset_id)


def get(*, session: Session, dataset_id: str) -> Dataset:
    dataset = repository.get(session, dataset_id)
    if dataset is None:
        raise DatasetNotFound(dataset_id)
    return dataset


def content_hash(x: np.ndarray, y: np.ndarray) -> str:
    digest = hashlib.sha256()
    for array in (x, y):
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest()


def upload_idx(
    *,
    session: Session,
    storage: Storage,
    name: str,
    images: BinaryIO,
    labels: BinaryIO,
    max_bytes: int,
) -> Dataset:
    """Parse and check an IDX image/label pair, store it, and record it."""
    x, y = read_idx_dataset(images, labels, max_bytes=max_bytes)
    if len(y) < MIN_SAMPLES:
        raise UploadInvalid.at("labels", f"needs at least {MIN_SAMPLES} samples, got {len(y)}")
    classes = int(y.max()) + 1
    if classes < MIN_CLASSES:
        raise UploadInvalid.at(
            "labels", f"needs at least {MIN_CLASSES} classes, got labels 0..{classes - 1}"
        )
    dataset = Dataset(
        id=new_id("ds"),
        name=name,
        format="idx",
        samples=len(y),
        input_shape=list(x.shape[1:]),
        classes=classes,
        bytes=x.nbytes + y.nbytes,
        sha256=content_hash(x, y),
    )
    dataset.path = f"datasets/{dataset.id}"
    storage.write_arrays(dataset.path, {"x": x, "y": y})
    try:
        session.add(dataset)
        session.commit()
    except BaseException:
        # Nothing stays behind from a failed upload: no row, no files.
        session.rollback()
        storage.delete(dataset.path)
        raise
    return dataset


def page(*, session: Session, cursor: str | None, limit: int) -> list[Dataset]:
    return repository.page(session, after=cursor, limit=limit)
