from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Query, UploadFile, status

from app.datasets import service
from app.datasets.schemas import DatasetOut, DatasetPage
from app.deps import ServicesDep, SessionDep
from app.errors import UploadTooLarge
from app.spec.schemas import NAME_PATTERN

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=DatasetOut)
def upload_dataset(
    session: SessionDep,
    services: ServicesDep,
    images: Annotated[UploadFile, File(description="IDX images, gzip or raw (e.g. MNIST).")],
    labels: Annotated[UploadFile, File(description="IDX labels, gzip or raw.")],
    format: Annotated[Literal["idx"], Form(description="The upload's format.")] = "idx",
    name: Annotated[str, Form(min_length=1, max_length=200, pattern=NAME_PATTERN)] = "dataset",
) -> DatasetOut:
    """Upload a classification dataset (IDX images and labels) and describe it."""
    limit = services.settings.max_upload_bytes
    for field, upload in (("images", images), ("labels", labels)):
        if upload.size is not None and upload.size > limit:
            raise UploadTooLarge(f"{field} is {upload.size} bytes; the limit is {limit}")
    dataset = service.upload_idx(
        session=session,
        storage=services.storage,
        name=name,
        images=images.file,
        labels=labels.file,
        max_bytes=limit,
    )
    return DatasetOut.model_validate(dataset)


@router.get("", response_model=DatasetPage)
def list_datasets(
    session: SessionDep,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> DatasetPage:
    """List uploaded datasets, newest first."""
    limit = min(limit, services.settings.page_size_max)
    rows = service.page(session=session, cursor=cursor, limit=limit)
    next_cursor = rows[-1].id if len(rows) == limit else None
    return DatasetPage(items=[DatasetOut.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get("/{dataset_id}", response_model=DatasetOut)
def get_dataset(dataset_id: str, session: SessionDep) -> DatasetOut:
    """One dataset: samples, input shape, classes, size and content hash."""
    return DatasetOut.model_validate(service.get(session=session, dataset_id=dataset_id))
