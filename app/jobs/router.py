from typing import Annotated

from fastapi import APIRouter, Body, Header, Query, WebSocket, status
from fastapi.responses import FileResponse

from app.checkpoints import service as checkpoints
from app.checkpoints.schemas import CheckpointPage
from app.deps import (
    CallerDep,
    PageDep,
    ServicesDep,
    SessionDep,
    WsServicesDep,
)
from app.events import service as events
from app.events.notify import Wakeups
from app.events.schemas import EventOut, EventPage, MetricPage, MetricRow
from app.jobs import service
from app.jobs.attempt import METRICS_MAX
from app.jobs.schemas import JobOut, JobPage, ResumeRequest
from app.jobs.status import JobStatus
from app.openapi import binary_download, errors
from app.spec import JobSpec
from app.spec.schemas import SEED_JOB_EXAMPLE
from app.streams import WS_CLOSE_BASE, open_stream, serve

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

# seq is a 32-bit column: a larger cursor is a client error, not a database overflow.
MAX_SEQ = 2**31 - 1
Cursor = Annotated[
    int, Query(ge=0, le=MAX_SEQ, description="Return events with a seq greater than this.")
]


IdempotencyKey = Annotated[
    str | None,
    Header(
        min_length=1,
        max_length=200,
        pattern=r"^[\x21-\x7e]+$",
        description="Retrying with the same key and body returns the same job (for 24 h).",
    ),
]


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=JobOut, responses=errors(404, 410)
)
def submit_job(
    spec: Annotated[JobSpec, Body(openapi_examples={"seed": {"value": SEED_JOB_EXAMPLE}})],
    caller: CallerDep,
    session: SessionDep,
    services: ServicesDep,
    idempotency_key: IdempotencyKey = None,
) -> JobOut:
    """Validate a training job and queue it."""
    job = service.submit(
        session=session,
        dispatcher=services.dispatcher,
        notifier=services.notifier,
        limits=services.settings,
        tenant=caller.tenant,
        spec=spec,
        idempotency_key=idempotency_key,
    )
    return JobOut.model_validate(job)


@router.get("", response_model=JobPage)
def list_jobs(
    caller: CallerDep,
    session: SessionDep,
    page: PageDep,
    status: JobStatus | None = None,
    tag: Annotated[str | None, Query(max_length=64)] = None,
) -> JobPage:
    """List jobs, newest first, by status and tag; follow `next_cursor` for more."""
    jobs = service.page(
        session=session,
        tenant=caller.tenant,
        status=status,
        tag=tag,
        cursor=page.cursor,
        limit=page.limit,
    )
    return JobPage(
        items=[JobOut.model_validate(job) for job in jobs],
        next_cursor=page.next_cursor(jobs, service.cursor_of),
    )


@router.get("/{job_id}", response_model=JobOut, responses=errors(404))
def get_job(job_id: str, caller: CallerDep, session: SessionDep) -> JobOut:
    """A job: its status, spec, result and where its time went."""
    return JobOut.model_validate(service.get(session=session, job_id=job_id, tenant=caller.tenant))


@router.post(
    "/{job_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobOut,
    responses=errors(404, 409),
)
def cancel_job(
    job_id: str, caller: CallerDep, session: SessionDep, services: ServicesDep
) -> JobOut:
    """Cancel a queued or running job (409 when it has already finished)."""
    job = service.cancel(
        session=session, notifier=services.notifier, job_id=job_id, tenant=caller.tenant
    )
    return JobOut.model_validate(job)


@router.post(
    "/{job_id}/resume",
    status_code=status.HTTP_201_CREATED,
    response_model=JobOut,
    responses=errors(404, 409, 410),
)
def resume_job(
    job_id: str,
    request: ResumeRequest,
    caller: CallerDep,
    session: SessionDep,
    services: ServicesDep,
) -> JobOut:
    """A new job continuing a finished one from its newest checkpoint, for more epochs."""
    job = service.resume(
        session=session,
        dispatcher=services.dispatcher,
        notifier=services.notifier,
        limits=services.settings,
        tenant=caller.tenant,
        job_id=job_id,
        epochs=request.epochs,
    )
    return JobOut.model_validate(job)


@router.get("/{job_id}/checkpoints", response_model=CheckpointPage, responses=errors(404))
def list_job_checkpoints(job_id: str, caller: CallerDep, session: SessionDep) -> CheckpointPage:
    """A job's checkpoints, oldest first: epochs its policy keeps, and its final weights."""
    rows = service.checkpoints_of(session=session, job_id=job_id, tenant=caller.tenant)
    return CheckpointPage(items=[checkpoints.describe(row) for row in rows], next_cursor=None)


@router.get(
    "/{job_id}/model",
    response_class=FileResponse,
    responses=binary_download("The weights (safetensors).") | errors(404, 410),
)
def download_model(
    job_id: str, caller: CallerDep, session: SessionDep, services: ServicesDep
) -> FileResponse:
    """A finished job's final weights, as a safetensors file."""
    final = service.final_weights(session=session, job_id=job_id, tenant=caller.tenant)
    weights = checkpoints.weights_file(services.storage, final)
    return FileResponse(
        weights.path,
        media_type="application/octet-stream",
        filename=f"{job_id}.safetensors",
        stat_result=weights.stat,
        headers={"ETag": f'"{final.sha256}"', "X-Checksum-Sha256": final.sha256},
    )


@router.get(
    "/{job_id}/events",
    response_model=EventPage,
    operation_id="list_job_events",
    responses=errors(404),
)
def list_events(
    job_id: str,
    caller: CallerDep,
    session: SessionDep,
    services: ServicesDep,
    after: Cursor = 0,
    limit: Annotated[int, Query(ge=1)] = 500,
) -> EventPage:
    """A job's stored events with seq > `after`, oldest first."""
    limit = min(limit, events.REPLAY_PAGE)
    rows = service.events_of(
        session=session, job_id=job_id, tenant=caller.tenant, after=after, limit=limit
    )
    items = [EventOut.model_validate(row, from_attributes=True) for row in rows]
    return EventPage(items=items, next_cursor=str(items[-1].seq) if len(items) == limit else None)


@router.get(
    "/{job_id}/metrics",
    response_model=MetricPage,
    operation_id="list_job_metrics",
    responses=errors(404),
    response_model_exclude_unset=True,
)
def list_metrics(
    job_id: str,
    caller: CallerDep,
    session: SessionDep,
    after: Cursor = 0,
    max_points: Annotated[
        int,
        Query(
            ge=2,
            le=METRICS_MAX,
            description="Past this many, step metrics are downsampled: each seq range keeps "
            "its lowest and highest train_loss; epoch metrics are always all there.",
        ),
    ] = 2000,
) -> MetricPage:
    """A job's metric events (per epoch and per step), oldest first, for a chart."""
    rows, last_seq = service.metrics(
        session=session, job_id=job_id, tenant=caller.tenant, after=after, max_points=max_points
    )
    items = [MetricRow.model_validate(row, from_attributes=True) for row in rows]
    return MetricPage(items=items, last_seq=last_seq)


@router.websocket("/{job_id}/stream")
async def stream_job(
    websocket: WebSocket, job_id: str, services: WsServicesDep, after: str = "0"
) -> None:
    """Replay a job's events after `after`, follow live ones, close with 1000 after the end."""
    caller = await open_stream(websocket, services)
    if caller is None:
        return
    # Parsed here, not by FastAPI: a websocket that fails validation is refused before it
    # is accepted (a bare 403), while every other bad stream closes with 4000 + status.
    if not (after.isascii() and after.isdigit() and int(after) <= MAX_SEQ):
        reason = f"after must be an integer between 0 and {MAX_SEQ}"
        await websocket.close(code=WS_CLOSE_BASE + 422, reason=reason)
        return
    settings = services.settings
    wakeups = Wakeups(job_id, settings.redis_url, settings.event_poll_s, services.seq_watch)

    async def send_events() -> None:
        follow = events.follow(
            services.sessions, wakeups, job_id, tenant=caller.tenant, after=int(after)
        )
        async for event in follow:
            await websocket.send_text(event.model_dump_json())

    await serve(websocket, services, caller, send_events())
