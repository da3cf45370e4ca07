"""Datasets: validate an upload, store its arrays, record what it holds; delete one."""

import hashlib
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from sqlalchemy.orm import Session

from app import quotas
from app.datasets import repository
from app.datasets.csv import read_csv
from app.datasets.idx_stream import store_idx
from app.datasets.npz import read_npz
from app.datasets.schemas import DatasetUpload, Format, UploadedFile
from app.datasets.validation import CheckedArrays, Origin, check_arrays
from app.errors import AppError, DatasetNotFound, UploadInvalid, UploadTooLarge
from app.ids import new_id
from app.orm import Dataset
from app.storage import Storage

# The multipart file fields each format takes; single-file formats use `file`.
FILE_FIELDS: Final[dict[Format, tuple[str, ...]]] = {
    "idx": ("images", "labels"),
    "npz": ("file",),
    "csv": ("file",),
}
NPZ_ORIGIN: Final = Origin(x_field="file", y_field="file")


class DatasetInUse(AppError):
    status_code = 409
    code = "dataset_in_use"


def find(session: Session, dataset_id: str, *, tenant: str, lock: bool = False) -> Dataset | None:
    """The tenant's dataset, or None; with `lock`, held against deletion until the
    transaction ends."""
    if lock:
        dataset = repository.get_for_share(session, dataset_id)
    else:
        dataset = repository.get(session, dataset_id)
    return dataset if dataset is not None and dataset.tenant == tenant else None


def get(*, session: Session, dataset_id: str, tenant: str) -> Dataset:
    """The tenant's dataset; another tenant's answers exactly like a missing one."""
    dataset = find(session, dataset_id, tenant=tenant)
    if dataset is None:
        raise DatasetNotFound(dataset_id)
    return dataset


def content_hash(x: npt.NDArray[Any], y: npt.NDArray[Any]) -> str:
    digest = hashlib.sha256()
    for array in (x, y):
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest()


def _files(upload: DatasetUpload, max_bytes: int) -> list[UploadedFile]:
    """The upload's files in the order its format takes them, each within the limit."""
    wanted = FILE_FIELDS[upload.format]
    takes = " and ".join(repr(field) for field in wanted)
    for field in wanted:
        if field not in upload.files:
            raise UploadInvalid.at(
                field, f"a {upload.format} upload needs this file (it takes {takes})"
            )
    for field in upload.files:
        if field not in wanted:
            raise UploadInvalid.at(
                field, f"a {upload.format} upload takes only {takes}; set format to match"
            )
    csv_options = {"label_column": upload.label_column, "header": upload.header}
    for field, value in csv_options.items():
        if upload.format != "csv" and value is not None:
            raise UploadInvalid.at(field, "only csv uploads take this field")
    for field in wanted:
        size = upload.files[field].size
        if size is not None and size > max_bytes:
            raise UploadTooLarge(f"{field} is {size} bytes; the limit is {max_bytes}")
    return [upload.files[field] for field in wanted]


def _read(upload: DatasetUpload, *, max_bytes: int) -> CheckedArrays:
    """Parse an npz or csv upload and check it for its task; writes nothing. (IDX streams:
    see _upload_idx.)"""
    files = _files(upload, max_bytes)
    if upload.format == "npz":
        x, y = read_npz(files[0].stream, max_bytes=max_bytes)
        origin = NPZ_ORIGIN
    else:
        header = True if upload.header is None else upload.header
        x, y, origin = read_csv(
            files[0].stream, label_column=upload.label_column, header=header, max_bytes=max_bytes
        )
    return check_arrays(x, y, task=upload.task, origin=origin)


def _admit(
    session: Session, *, tenant: str, size: int, max_dataset_bytes: int, quota_bytes: int
) -> None:
    if size > max_dataset_bytes:
        # Compressed files can hold far more than they weigh: the arrays are what jobs load.
        raise UploadTooLarge(f"the arrays hold {size} bytes; the limit is {max_dataset_bytes}")
    quotas.admit(session, tenant=tenant, adding=size, quota=quota_bytes)


def _upload_idx(
    *,
    session: Session,
    storage: Storage,
    tenant: str,
    upload: DatasetUpload,
    max_bytes: int,
    max_dataset_bytes: int,
    quota_bytes: int,
) -> Dataset:
    """An IDX pair, streamed to disk in chunks (memory bounded whatever it inflates to)."""
    images, labels = _files(upload, max_bytes)
    dataset_id = new_id("ds")
    path = f"datasets/{dataset_id}"

    def admit(size: int) -> None:
        _admit(
            session,
            tenant=tenant,
            size=size,
            max_dataset_bytes=max_dataset_bytes,
            quota_bytes=quota_bytes,
        )

    with storage.writing(path) as staging:
        stored = store_idx(
            images.stream,
            labels.stream,
            task=upload.task,
            max_bytes=max_bytes,
            admit=admit,
            directory=staging,
        )
    dataset = Dataset(
        id=dataset_id,
        tenant=tenant,
        name=upload.name,
        format=upload.format,
        samples=stored.samples,
        input_shape=stored.input_shape,
        task=stored.task,
        classes=stored.classes,
        targets=stored.targets,
        bytes=stored.bytes,
        sha256=stored.sha256,
        path=path,
    )
    _record(session, storage, dataset)
    return dataset


def _record(session: Session, storage: Storage, dataset: Dataset) -> None:
    try:
        session.add(dataset)
        session.commit()
    except BaseException:
        # Nothing stays behind from a failed upload: no row, no files.
        session.rollback()
        storage.delete(dataset.path)
        raise


def upload(
    *,
    session: Session,
    storage: Storage,
    tenant: str,
    upload: DatasetUpload,
    max_bytes: int,
    max_dataset_bytes: int,
    quota_bytes: int,
) -> Dataset:
    """Parse and check an upload in any format, store its arrays, and record it."""
    if upload.format == "idx":
        return _upload_idx(
            session=session,
            storage=storage,
            tenant=tenant,
            upload=upload,
            max_bytes=max_bytes,
            max_dataset_bytes=max_dataset_bytes,
            quota_bytes=quota_bytes,
        )
    arrays = _read(upload, max_bytes=max_bytes)
    size = arrays.x.nbytes + arrays.y.nbytes
    _admit(
        session,
        tenant=tenant,
        size=size,
        max_dataset_bytes=max_dataset_bytes,
        quota_bytes=quota_bytes,
    )
    dataset = Dataset(
        id=new_id("ds"),
        tenant=tenant,
        name=upload.name,
        format=upload.format,
        samples=len(arrays.y),
        input_shape=arrays.input_shape,
        task=arrays.task,
        classes=arrays.classes,
        targets=arrays.targets,
        bytes=size,
        sha256=content_hash(arrays.x, arrays.y),
    )
    dataset.path = f"datasets/{dataset.id}"
    storage.write_arrays(dataset.path, {"x": arrays.x, "y": arrays.y})
    _record(session, storage, dataset)
    return dataset


def delete(*, session: Session, storage: Storage, dataset_id: str, tenant: str) -> None:
    """Delete a dataset and its files; refused while a job on it has not finished."""
    dataset = repository.get_for_update(session, dataset_id)
    if dataset is None or dataset.tenant != tenant:
        raise DatasetNotFound(dataset_id)
    unfinished = repository.unfinished_job(session, dataset_id)
    if unfinished is not None:
        job_id, status = unfinished
        raise DatasetInUse(
            f"dataset {dataset_id!r} is used by job {job_id!r}, which is {status}; "
            "cancel the job or wait for it to finish"
        )
    repository.detach_jobs(session, dataset_id)
    repository.delete(session, dataset)
    session.commit()
    # After the commit: a failed commit leaves the dataset whole, files included.
    storage.delete(dataset.path)


def page(*, session: Session, tenant: str, cursor: str | None, limit: int) -> list[Dataset]:
    """The tenant's datasets, newest first."""
    return repository.page(session, tenant=tenant, after=cursor, limit=limit)
