import asyncio
from typing import Annotated

from fastapi import APIRouter, Query, WebSocket, WebSocketDisconnect, status
from starlette.concurrency import run_in_threadpool

from app.deps import (
    CallerDep,
    Services,
    ServicesDep,
    SessionDep,
    WsServicesDep,
    key_is_active,
    websocket_caller,
    websocket_credentials,
)
from app.errors import AppError
from app.spec.sweeps import SweepSpec
from app.sweeps import service
from app.sweeps.schemas import AdviseRequest, SweepOut, SweepPage

router = APIRouter(prefix="/v1/sweeps", tags=["sweeps"])
advise_router = APIRouter(prefix="/v1/advise", tags=["sweeps"])

# A stream that cannot start closes with 4000 + the HTTP status a request would get.
WS_CLOSE_BASE = 4000


@router.post("", status_code=status.HTTP_201_CREATED, response_model=SweepOut)
def create_sweep(
    spec: SweepSpec, caller: CallerDep, session: SessionDep, services: ServicesDep
) -> SweepOut:
    """Fan a job out into trials over a space of spec fields; every trial is validated
    before any runs."""
    sweep = service.create(
        session=session,
        dispatcher=services.dispatcher,
        notifier=services.notifier,
        limits=services.settings,
        tenant=caller.tenant,
        spec=spec,
    )
    return service.describe(session=session, sweep=sweep)


@advise_router.post("", status_code=status.HTTP_201_CREATED, response_model=SweepOut)
def advise(
    request: AdviseRequest, caller: CallerDep, session: SessionDep, services: ServicesDep
) -> SweepOut:
    """Which optimizer, batch size, schedule and precision reach the target fastest: a
    ready-made halving sweep that runs the base spec too; follow it as a sweep."""
    sweep = service.advise(
        session=session,
        dispatcher=services.dispatcher,
        notifier=services.notifier,
        limits=services.settings,
        tenant=caller.tenant,
        request=request,
    )
    return service.describe(session=session, sweep=sweep)


@router.get("", response_model=SweepPage)
def list_sweeps(
    caller: CallerDep,
    session: SessionDep,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1)] = 20,
) -> SweepPage:
    """The tenant's newest sweeps."""
    limit = min(limit, services.settings.page_size_max)
    sweeps = service.page(session=session, tenant=caller.tenant, limit=limit)
    return SweepPage(
        items=[service.describe(session=session, sweep=sweep) for sweep in sweeps],
        next_cursor=None,
    )


@router.get("/{sweep_id}", response_model=SweepOut)
def get_sweep(sweep_id: str, caller: CallerDep, session: SessionDep) -> SweepOut:
    """A sweep: its trials, leaderboard, best configuration and what mattered."""
    sweep = service.get(session=session, sweep_id=sweep_id, tenant=caller.tenant)
    return service.describe(session=session, sweep=sweep)


@router.post("/{sweep_id}/cancel", status_code=status.HTTP_202_ACCEPTED, response_model=SweepOut)
def cancel_sweep(
    sweep_id: str, caller: CallerDep, session: SessionDep, services: ServicesDep
) -> SweepOut:
    """Cancel every open trial; no further trial starts (409 once the sweep has ended)."""
    sweep = service.cancel(
        session=session, notifier=services.notifier, sweep_id=sweep_id, tenant=caller.tenant
    )
    return service.describe(session=session, sweep=sweep)


@router.websocket("/{sweep_id}/stream")
async def stream_sweep(websocket: WebSocket, sweep_id: str, services: WsServicesDep) -> None:
    """The sweep as GET shows it, sent again whenever it changes; closes with 1000 after
    the sweep has ended."""
    token, subprotocol = websocket_credentials(websocket)
    await websocket.accept(subprotocol=subprotocol)
    try:
        caller = await run_in_threadpool(websocket_caller, services, token)
        sending = asyncio.create_task(_send_changes(websocket, services, sweep_id, caller.tenant))
        hangup = asyncio.create_task(_hangup(websocket))
        watched = {sending, hangup}
        if caller.key_id is not None:
            watched.add(asyncio.create_task(_revoked(services, caller.key_id)))
        done, pending = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        if sending not in done:
            if hangup not in done:  # the key was revoked: its streams end with it
                await websocket.close(code=WS_CLOSE_BASE + 401, reason="the key was revoked")
            return
        sending.result()
    except AppError as error:
        await websocket.close(code=WS_CLOSE_BASE + error.status_code, reason=error.message[:120])
        return
    except (WebSocketDisconnect, RuntimeError):
        return  # the client left while we were sending
    await websocket.close(code=1000)


async def _send_changes(
    websocket: WebSocket, services: Services, sweep_id: str, tenant: str
) -> None:
    def read() -> SweepOut:
        with services.sessions() as session:
            sweep = service.get(session=session, sweep_id=sweep_id, tenant=tenant)
            return service.describe(session=session, sweep=sweep)

    sent = None
    while True:
        view = await run_in_threadpool(read)
        shown = view.model_dump_json()
        if shown != sent:
            await websocket.send_text(f'{{"type":"sweep","data":{shown}}}')
            sent = shown
        if view.status in service.TERMINAL:
            return
        await asyncio.sleep(services.settings.event_poll_s)


async def _hangup(websocket: WebSocket) -> None:
    while (await websocket.receive())["type"] != "websocket.disconnect":
        pass


async def _revoked(services: Services, key_id: str) -> None:
    """Returns once the stream's key is revoked (checked every key_check_s)."""
    while await run_in_threadpool(key_is_active, services, key_id):
        await asyncio.sleep(services.settings.key_check_s)
