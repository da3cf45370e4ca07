"""What every websocket stream does around its messages: authenticate the caller, notice
a hang-up or a revoked key, and close with a code that says why."""

import asyncio
from collections.abc import Coroutine
from typing import Any

from fastapi import WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from app.deps import Services, key_is_active, websocket_caller, websocket_credentials
from app.errors import AppError
from app.keys.schemas import Caller

# A stream that cannot start closes with 4000 + the HTTP status a request would get (4404).
WS_CLOSE_BASE = 4000


async def close_for(websocket: WebSocket, error: AppError) -> None:
    await websocket.close(code=WS_CLOSE_BASE + error.status_code, reason=error.message[:120])


async def open_stream(websocket: WebSocket, services: Services) -> Caller | None:
    """Accept the socket and authenticate its caller; None (and closed) if it may not."""
    token, subprotocol = websocket_credentials(websocket)
    await websocket.accept(subprotocol=subprotocol)
    try:
        return await run_in_threadpool(websocket_caller, services, token)
    except AppError as error:
        await close_for(websocket, error)
        return None


async def serve(
    websocket: WebSocket, services: Services, caller: Caller, send: Coroutine[Any, Any, None]
) -> None:
    """Run `send` until it ends (close 1000), the client hangs up, or the key is revoked."""
    # Clients only listen; reading their side is how a stream learns it was hung up on
    # while it waits for the next message, instead of at the next send.
    sending = asyncio.create_task(send)
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
    try:
        sending.result()
    except AppError as error:
        await close_for(websocket, error)
        return
    except (WebSocketDisconnect, RuntimeError):
        return  # the client left while we were sending
    await websocket.close(code=1000)


async def _hangup(websocket: WebSocket) -> None:
    while (await websocket.receive())["type"] != "websocket.disconnect":
        pass


async def _revoked(services: Services, key_id: str) -> None:
    """Returns once the stream's key is revoked (checked every key_check_s)."""
    while await run_in_threadpool(key_is_active, services, key_id):
        await asyncio.sleep(services.settings.key_check_s)
