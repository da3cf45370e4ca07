import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Query, WebSocket, WebSocketDisconnect, status
from fastapi.responses import FileResponse

from app.checkpoints import service as checkpoints
from app.checkpoints.schemas import CheckpointPage
from app.deps import ServicesDep, SessionDep, WsServicesDep
from app.errors import AppError
from app.events import service as events
from app.events.notify import Wakeups
from app.events.schemas import EventOut, EventPage, MetricPage, MetricRow
from app.jobs import service
from app.jobs.schemas import JobOut, JobPage, ResumeRequest
from app.spec import JobSpec
from app.spec.schemas import SEED_JOB_EXAMPLE

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

Status = Literal["queued", "running", "succeeded", "failed", "cancelled"]
# seq is a 32-bit column: a larger cursor is a client error, not a database overflow.
MAX_SEQ = 2**31 - 1
Cursor = Annotated[
    int, Query(ge=0, le=MAX_SEQ, description="Return events with a seq greater than this.")
]
# A stream that cannot start closes with 4000 + the HTTP status a request would get (4404).
WS_CLOSE_BASE = 4000


@router.post("", status_code=status.HTTP_201_CREATED, response_model=JobOut)
def submit_job(
    spec: Annotated[JobSpec, Body(openapi_examples={"seed": {"value": SEED_JOB_EXAMPLE}})],
    session: SessionDep,
    services: ServicesDep,
) -> JobOut:
    """Validate a training job and queue it."""
    job = service.submit(
        session=session, dispatcher=services.dispatcher, notifier=services.notifier, spec=spec
    )
    return JobOut.model_validate(job)


@router.get("", response_model=JobPage)
def list_jobs(
    session: SessionDep,
    services: ServicesDep,
    status: Status | None = None,
    tag: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> JobPage:
    """List jobs, newest first, by status and tag; follow `next_cursor` for more."""
    limit = min(limit, services.settings.page_size_max)
    jobs = service.page(session=session, status=status, tag=tag, cursor=cursor, limit=limit)
    next_cursor = service.cursor_after(jobs) if len(jobs) == limit else None
    return JobPage(items=[JobOut.model_validate(job) for job in jobs], next_cursor=next_cursor)


@router.get("/{job_id}", response_model=JobOut)
def get_job(job_id: str, session: SessionDep) -> JobOut:
    """A job: its status, spec, result and where its time went."""
    return JobOut.model_validate(service.get(session=session, job_id=job_id))


@router.post("/{job_id}/cancel", status_code=status.HTTP_202_ACCEPTED, response_model=JobOut)
def cancel_job(job_id: str, session: SessionDep, services: ServicesDep) -> JobOut:
    """Cancel a queued or running job (409 when it has already finished)."""
    job = service.cancel(session=session, notifier=services.notifier, job_id=job_id)
    return JobOut.model_validate(job)


@router.post("/{job_id}/resume", status_code=status.HTTP_201_CREATED, response_model=JobOut)
def resume_job(
    job_id: str, request: ResumeRequest, session: SessionDep, services: ServicesDep
) -> JobOut:
    """A new job continuing a finished one from its newest checkpoint, for more epochs."""
    job = service.resume(
        session=session,
        dispatcher=services.dispatcher,
        notifier=services.notifier,
        job_id=job_id,
        epochs=request.epochs,
    )
    return JobOut.model_validate(job)


@router.get("/{job_id}/checkpoints", response_model=CheckpointPage)
def list_job_checkpoints(job_id: str, session: SessionDep) -> CheckpointPage:
    """A job's checkpoints, oldest first: epochs its policy keeps, and its final weights."""
    rows = service.checkpoints_of(session=session, job_id=job_id)
    return CheckpointPage(items=[checkpoints.describe(row) for row in rows], next_cursor=None)


@router.get(
    "/{job_id}/model",
    response_class=FileResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def download_model(job_id: str, session: SessionDep, services: ServicesDep) -> FileResponse:
    """A finished job's final weights, as a safetensors file."""
    final = service.final_weights(session=session, job_id=job_id)
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
    session: SessionDep,
    services: ServicesDep,
    after: Cursor = 0,
    limit: Annotated[int, Query(ge=1)] = 500,
) -> EventPage:
    """A job's stored events with seq > `after`, oldest first."""
    limit = min(limit, events.REPLAY_PAGE)
    rows = events.page(session, job_id, after=after, limit=limit)
    items = [EventOut.model_validate(row, from_attributes=True) for row in rows]
    return EventPage(items=items, next_cursor=items[-1].seq if len(items) == limit else None)


@router.get("/{job_id}/metrics", response_model=MetricPage)
def list_metrics(job_id: str, session: SessionDep, after: Cursor = 0) -> MetricPage:
    """A job's metric events (per epoch and per step), oldest first."""
    rows = service.metrics(session=session, job_id=job_id, after=after)
    return MetricPage(items=[MetricRow.model_validate(row, from_attributes=True) for row in rows])


@router.websocket("/{job_id}/stream")
async def stream_job(
    websocket: WebSocket, job_id: str, services: WsServicesDep, after: int = 0
) -> None:
    """Replay a job's events after `after`, follow live ones, close with 1000 after the end."""
    await websocket.accept()
    if not 0 <= after <= MAX_SEQ:
        reason = f"after must be between 0 and {MAX_SEQ}"
        await websocket.close(code=WS_CLOSE_BASE + 422, reason=reason)
        return
    settings = services.settings
    wakeups = Wakeups(job_id, settings.redis_url, settings.event_poll_s, services.seq_watch)

    async def send_events() -> None:
        async for event in events.follow(services.sessions, wakeups, job_id, after=after):
            await websocket.send_text(event.model_dump_json())

    # Clients only listen; reading their side is how a stream learns it was hung up on
    # while it waits for the next event, instead of at the next send.
    sending = asyncio.create_task(send_events())
    hangup = asyncio.create_task(_hangup(websocket))
    await asyncio.wait({sending, hangup}, return_when=asyncio.FIRST_COMPLETED)
    if not sending.done():
        sending.cancel()
        return
    hangup.cancel()
    try:
        sending.result()
    except AppError as error:
        await websocket.close(code=WS_CLOSE_BASE + error.status_code, reason=error.message[:120])
        return
    except (WebSocketDisconnect, RuntimeError):
        return  # the client left while we were sending
    await websocket.close(code=1000)


async def _hangup(websocket: WebSocket) -> None:
    while (await websocket.receive())["type"] != "websocket.disconnect":
        pass
