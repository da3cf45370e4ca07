from typing import Annotated, Literal

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
from app.jobs.schemas import JobOut, JobPage, ResumeRequest
from app.jobs.status import JobStatus
from app.spec import JobSpec
from app.spec.schemas import SEED_JOB_EXAMPLE
from app.streams import WS_CLOSE_BASE, open_stream, serve

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

# A literal of the enum's members: the OpenAPI document lists the words inline.
Status = Literal[
    JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED
]
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


@router.post("", status_code=status.HTTP_201_CREATED, response_model=JobOut)
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
    status: Status | None = None,
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


@router.get("/{job_id}", response_model=JobOut)
def get_job(job_id: str, caller: CallerDep, session: SessionDep) -> JobOut:
    """A job: its status, spec, result and where its time went."""
    return JobOut.model_validate(service.get(session=session, job_id=job_id, tenant=caller.tenant))


@router.post("/{job_id}/cancel", status_code=status.HTTP_202_ACCEPTED, response_model=JobOut)
def cancel_job(
    job_id: str, caller: CallerDep, session: SessionDep, services: ServicesDep
) -> JobOut:
    """Cancel a queued or running job (409 when it has already finished)."""
    job = service.cancel(
        session=session, notifier=services.notifier, job_id=job_id, tenant=caller.tenant
    )
    return JobOut.model_validate(job)


@router.post("/{job_id}/resume", status_code=status.HTTP_201_CREATED, response_model=JobOut)
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


@router.get("/{job_id}/checkpoints", response_model=CheckpointPage)
def list_job_checkpoints(job_id: str, caller: CallerDep, session: SessionDep) -> CheckpointPage:
    """A job's checkpoints, oldest first: epochs its policy keeps, and its final weights."""
    rows = service.checkpoints_of(session=session, job_id=job_id, tenant=caller.tenant)
    return CheckpointPage(items=[checkpoints.describe(row) for row in rows], next_cursor=None)


@router.get(
    "/{job_id}/model",
    response_class=FileResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
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


@router.get("/{job_id}/events", response_model=EventPage)
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
    return EventPage(items=items, next_cursor=items[-1].seq if len(items) == limit else None)


@router.get("/{job_id}/metrics", response_model=MetricPage)
def list_metrics(
    job_id: str, caller: CallerDep, session: SessionDep, after: Cursor = 0
) -> MetricPage:
    """A job's metric events (per epoch and per step), oldest first."""
    rows = service.metrics(session=session, job_id=job_id, tenant=caller.tenant, after=after)
    return MetricPage(items=[MetricRow.model_validate(row, from_attributes=True) for row in rows])


@router.websocket("/{job_id}/stream")
async def stream_job(
    websocket: WebSocket, job_id: str, services: WsServicesDep, after: int = 0
) -> None:
    """Replay a job's events after `after`, follow live ones, close with 1000 after the end."""
    caller = await open_stream(websocket, services)
    if caller is None:
        return
    if not 0 <= after <= MAX_SEQ:
        reason = f"after must be between 0 and {MAX_SEQ}"
        await websocket.close(code=WS_CLOSE_BASE + 422, reason=reason)
        return
    settings = services.settings
    wakeups = Wakeups(job_id, settings.redis_url, settings.event_poll_s, services.seq_watch)

    async def send_events() -> None:
        follow = events.follow(
            services.sessions, wakeups, job_id, tenant=caller.tenant, after=after
        )
        async for event in follow:
            await websocket.send_text(event.model_dump_json())

    await serve(websocket, services, caller, send_events())
