from typing import Annotated

from fastapi import APIRouter, File, Form, Response, UploadFile, status

from app.datasets import service
from app.datasets.schemas import DatasetOut, DatasetPage, DatasetUpload, Format, UploadedFile
from app.datasets.validation import Task
from app.deps import CallerDep, PageDep, ServicesDep, SessionDep
from app.openapi import errors
from app.spec.schemas import NAME_PATTERN

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])

OptionalFile = UploadFile | None


@router.post("", status_code=status.HTTP_201_CREATED, response_model=DatasetOut)
def upload_dataset(
    caller: CallerDep,
    session: SessionDep,
    services: ServicesDep,
    format: Annotated[
        Format, Form(description="idx (images + labels), npz (file) or csv (file).")
    ] = "idx",
    name: Annotated[str, Form(min_length=1, max_length=200, pattern=NAME_PATTERN)] = "dataset",
    task: Annotated[
        Task, Form(description="classification: integer labels; regression: float targets.")
    ] = "classification",
    label_column: Annotated[
        str | None,
        Form(
            max_length=200,
            description="csv: the label column's name, or with header=false its 0-based "
            "index; default: the last column.",
        ),
    ] = None,
    header: Annotated[
        bool | None, Form(description="csv: whether the first row names the columns (true).")
    ] = None,
    file: Annotated[OptionalFile, File(description="npz (arrays x and y) or csv.")] = None,
    images: Annotated[OptionalFile, File(description="idx: images, gzip or raw.")] = None,
    labels: Annotated[OptionalFile, File(description="idx: labels, gzip or raw.")] = None,
) -> DatasetOut:
    """Upload a dataset (npz, csv, or IDX images and labels) for classification or regression."""
    parts = {"file": file, "images": images, "labels": labels}
    dataset = service.upload(
        session=session,
        storage=services.storage,
        tenant=caller.tenant,
        upload=DatasetUpload(
            format=format,
            name=name,
            task=task,
            label_column=label_column,
            header=header,
            files={k: UploadedFile(f.file, f.size) for k, f in parts.items() if f is not None},
        ),
        max_bytes=services.settings.max_upload_bytes,
        max_dataset_bytes=services.settings.max_dataset_bytes,
        quota_bytes=services.settings.tenant_storage_bytes,
    )
    return DatasetOut.model_validate(dataset)


@router.get("", response_model=DatasetPage)
def list_datasets(
    caller: CallerDep,
    session: SessionDep,
    page: PageDep,
) -> DatasetPage:
    """List uploaded datasets, newest first."""
    rows = service.page(session=session, tenant=caller.tenant, cursor=page.cursor, limit=page.limit)
    return DatasetPage(
        items=[DatasetOut.model_validate(r) for r in rows],
        next_cursor=page.next_cursor(rows, lambda row: row.id),
    )


@router.get("/{dataset_id}", response_model=DatasetOut, responses=errors(404))
def get_dataset(dataset_id: str, caller: CallerDep, session: SessionDep) -> DatasetOut:
    """One dataset: samples, input shape, task, classes or targets, size and content hash."""
    dataset = service.get(session=session, dataset_id=dataset_id, tenant=caller.tenant)
    return DatasetOut.model_validate(dataset)


@router.delete(
    "/{dataset_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=errors(404, 409),
)
def delete_dataset(
    dataset_id: str, caller: CallerDep, session: SessionDep, services: ServicesDep
) -> None:
    """Delete a dataset and its files (409 while a queued or running job uses it)."""
    service.delete(
        session=session, storage=services.storage, dataset_id=dataset_id, tenant=caller.tenant
    )
