from typing import Annotated

from fastapi import APIRouter, Query, WebSocket, status

from app.deps import (
    CallerDep,
    ServicesDep,
    SessionDep,
    WsServicesDep,
)
from app.openapi import errors
from app.spec.sweeps import SweepSpec
from app.streams import open_stream, serve
from app.sweeps import advisor, lifecycle
from app.sweeps.schemas import AdviseRequest, SweepOut, SweepPage

router = APIRouter(prefix="/v1/sweeps", tags=["sweeps"])
advise_router = APIRouter(prefix="/v1/advise", tags=["sweeps"])


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=SweepOut, responses=errors(404, 410)
)
def create_sweep(
    spec: SweepSpec, caller: CallerDep, session: SessionDep, services: ServicesDep
) -> SweepOut:
    """Fan a job out into trials over a space of spec fields; every trial is validated
    before any runs."""
    sweep = lifecycle.create(
        session=session,
        dispatcher=services.dispatcher,
        notifier=services.notifier,
        limits=services.settings,
        tenant=caller.tenant,
        spec=spec,
    )
    return lifecycle.describe(session=session, sweep=sweep)


@advise_router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=SweepOut, responses=errors(404, 410)
)
def advise(
    request: AdviseRequest, caller: CallerDep, session: SessionDep, services: ServicesDep
) -> SweepOut:
    """Which optimizer, batch size, schedule and precision reach the target fastest: a
    ready-made halving sweep that runs the base spec too; follow it as a sweep."""
    sweep = advisor.advise(
        session=session,
        dispatcher=services.dispatcher,
        notifier=services.notifier,
        limits=services.settings,
        tenant=caller.tenant,
        request=request,
    )
    return lifecycle.describe(session=session, sweep=sweep)


@router.get("", response_model=SweepPage)
def list_sweeps(
    caller: CallerDep,
    session: SessionDep,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1)] = 20,
) -> SweepPage:
    """The tenant's newest sweeps."""
    limit = min(limit, services.settings.page_size_max)
    sweeps = lifecycle.page(session=session, tenant=caller.tenant, limit=limit)
    return SweepPage(
        items=[lifecycle.describe(session=session, sweep=sweep) for sweep in sweeps],
        next_cursor=None,
    )


@router.get("/{sweep_id}", response_model=SweepOut, responses=errors(404))
def get_sweep(sweep_id: str, caller: CallerDep, session: SessionDep) -> SweepOut:
    """A sweep: its trials, leaderboard, best configuration and what mattered."""
    sweep = lifecycle.get(session=session, sweep_id=sweep_id, tenant=caller.tenant)
    return lifecycle.describe(session=session, sweep=sweep)


@router.post(
    "/{sweep_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=SweepOut,
    responses=errors(404, 409),
)
def cancel_sweep(
    sweep_id: str, caller: CallerDep, session: SessionDep, services: ServicesDep
) -> SweepOut:
    """Cancel every open trial; no further trial starts (409 once the sweep has ended)."""
    sweep = lifecycle.cancel(
        session=session, notifier=services.notifier, sweep_id=sweep_id, tenant=caller.tenant
    )
    return lifecycle.describe(session=session, sweep=sweep)


@router.websocket("/{sweep_id}/stream")
async def stream_sweep(websocket: WebSocket, sweep_id: str, services: WsServicesDep) -> None:
    """The sweep as GET shows it, sent again whenever it changes; closes with 1000 after
    the sweep has ended."""
    caller = await open_stream(websocket, services)
    if caller is None:
        return

    async def send_changes() -> None:
        async for view in lifecycle.changes(
            services.sessions,
            sweep_id=sweep_id,
            tenant=caller.tenant,
            poll_s=services.settings.event_poll_s,
        ):
            await websocket.send_text(f'{{"type":"sweep","data":{view.model_dump_json()}}}')

    await serve(websocket, services, caller, send_changes())
