"""Guards in front of every route."""

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from app.error_handlers import error_body


class RejectNul:
    """Answer 400 to a path or query with a NUL character before it reaches a route.

    Postgres cannot store or compare NUL in text, so an id or filter holding one would
    otherwise fail in the database instead of as the client's error.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and (
            "\x00" in scope["path"] or b"%00" in scope["query_string"].lower()
        ):
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 4400})
                return
            body = error_body("bad_request", "the path or query contains a NUL character")
            await JSONResponse(body, status_code=400)(scope, receive, send)
            return
        await self.app(scope, receive, send)
