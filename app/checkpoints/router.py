from typing import Annotated

from fastapi import APIRouter, File, Form, Query, UploadFile, status
from fastapi.responses import FileResponse

from app.checkpoints import service
from app.checkpoints.schemas import CheckpointOut, CheckpointPage
from app.deps import CallerDep, PageDep, ServicesDep, SessionDep
from app.openapi import binary_download, errors
from app.spec.schemas import NAME_PATTERN

router = APIRouter(prefix="/v1/checkpoints", tags=["checkpoints"])

SAFETENSORS_MEDIA_TYPE = "application/octet-stream"


@router.post("", status_code=status.HTTP_201_CREATED, response_model=CheckpointOut)
def upload_checkpoint(
    caller: CallerDep,
    session: SessionDep,
    services: ServicesDep,
    file: Annotated[
        UploadFile, File(description="Weights as safetensors (safetensors.torch.save_file).")
    ],
    name: Annotated[str, Form(min_length=1, max_length=200, pattern=NAME_PATTERN)] = "weights",
) -> CheckpointOut:
    """Upload weights (a safetensors file) to warm-start jobs from."""
    checkpoint = service.upload(
        session=session,
        storage=services.storage,
        tenant=caller.tenant,
        stream=file.file,
        size=file.size,
        name=name,
        max_bytes=services.settings.max_upload_bytes,
        quota_bytes=services.settings.tenant_storage_bytes,
    )
    return service.describe(checkpoint)


@router.get("", response_model=CheckpointPage)
def list_checkpoints(
    caller: CallerDep,
    session: SessionDep,
    page: PageDep,
    job_id: Annotated[str | None, Query(max_length=64, description="Only this job's.")] = None,
) -> CheckpointPage:
    """List checkpoints, uploaded and saved by jobs, newest first; follow `next_cursor`."""
    rows = service.page(
        session=session, tenant=caller.tenant, job_id=job_id, cursor=page.cursor, limit=page.limit
    )
    return CheckpointPage(
        items=[service.describe(r) for r in rows],
        next_cursor=page.next_cursor(rows, lambda row: row.id),
    )


@router.get("/{checkpoint_id}", response_model=CheckpointOut, responses=errors(404))
def get_checkpoint(checkpoint_id: str, caller: CallerDep, session: SessionDep) -> CheckpointOut:
    """One checkpoint: its job, epoch, metrics, tensors, parameter count, size and sha256."""
    checkpoint = service.get(session=session, checkpoint_id=checkpoint_id, tenant=caller.tenant)
    return service.describe(checkpoint)


@router.get(
    "/{checkpoint_id}/download",
    response_class=FileResponse,
    responses=binary_download("The weights (safetensors).") | errors(404, 410),
)
def download_checkpoint(
    checkpoint_id: str, caller: CallerDep, session: SessionDep, services: ServicesDep
) -> FileResponse:
    """The checkpoint's weights, as a safetensors file."""
    checkpoint = service.get(session=session, checkpoint_id=checkpoint_id, tenant=caller.tenant)
    weights = service.weights_file(services.storage, checkpoint)
    return FileResponse(
        weights.path,
        media_type=SAFETENSORS_MEDIA_TYPE,
        filename=f"{checkpoint.id}.safetensors",
        stat_result=weights.stat,
        headers={"ETag": f'"{checkpoint.sha256}"', "X-Checksum-Sha256": checkpoint.sha256},
    )
