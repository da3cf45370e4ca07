"""What routes depend on, as Annotated aliases so signatures read like prose."""

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Annotated, TypeVar

from fastapi import Depends, Query, Request, WebSocket
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.broker import Dispatcher
from app.config import Settings
from app.events.notify import Notifier, SeqWatch
from app.keys import service as keys
from app.keys.schemas import Caller
from app.limits import RateLimiter, check_rate
from app.storage import Storage


@dataclass
class Services:
    """Everything the API process builds once at start-up from its Settings."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    storage: Storage
    dispatcher: Dispatcher
    notifier: Notifier
    seq_watch: SeqWatch
    secrets: keys.ServerSecrets
    rate_limiter: RateLimiter


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def get_ws_services(websocket: WebSocket) -> Services:
    services: Services = websocket.app.state.services
    return services


def get_session(services: Annotated[Services, Depends(get_services)]) -> Iterator[Session]:
    with services.sessions() as session:
        yield session


ServicesDep = Annotated[Services, Depends(get_services)]
WsServicesDep = Annotated[Services, Depends(get_ws_services)]
SessionDep = Annotated[Session, Depends(get_session)]


Row = TypeVar("Row")


@dataclass(frozen=True)
class Page:
    """A list route's page: at most `limit` rows after `cursor`."""

    limit: int
    cursor: str | None

    def next_cursor(self, rows: Sequence[Row], cursor_of: Callable[[Row], str]) -> str | None:
        """The cursor of the page after `rows`; None when this page was the last."""
        return cursor_of(rows[-1]) if len(rows) == self.limit else None


def get_page(
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Page:
    """The page a list route was asked for, its limit capped at the server's most."""
    return Page(min(limit, services.settings.page_size_max), cursor)


PageDep = Annotated[Page, Depends(get_page)]


# Declares the scheme in the OpenAPI document (the console's Authorize button); the
# answer to a missing or wrong key is ours (401), not FastAPI's.
bearer = HTTPBearer(auto_error=False, description="A tenant's key (taas_...) or the admin token.")


def get_caller(
    services: ServicesDep,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Caller:
    """Who sends the request (401 without a valid key), within its tenant's request rate."""
    if credentials is None:
        raise keys.Unauthorized("send Authorization: Bearer <key>")
    caller = keys.authenticate(
        session=session, secrets=services.secrets, token=credentials.credentials
    )
    check_rate(services.rate_limiter, caller.tenant)
    return caller


CallerDep = Annotated[Caller, Depends(get_caller)]


# Browsers cannot set headers on a websocket: they offer this subprotocol followed by the
# key, `new WebSocket(url, ["taas.bearer", key])`, and the server accepts with this one.
WS_BEARER_PROTOCOL = "taas.bearer"


def websocket_credentials(websocket: WebSocket) -> tuple[str | None, str | None]:
    """The token a websocket client sent (header or subprotocol) and the subprotocol to
    accept with; never from the URL, where proxies and logs would keep it."""
    offered: list[str] = websocket.scope.get("subprotocols", [])
    if WS_BEARER_PROTOCOL in offered:
        position = offered.index(WS_BEARER_PROTOCOL) + 1
        return (offered[position] if position < len(offered) else None), WS_BEARER_PROTOCOL
    scheme, _, token = websocket.headers.get("authorization", "").partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None, None


def websocket_caller(services: Services, token: str | None) -> Caller:
    """Who opens a stream, as get_caller decides for a request (raises its errors)."""
    if token is None:
        raise keys.Unauthorized("send Authorization: Bearer <key>")
    with services.sessions() as session:
        caller = keys.authenticate(session=session, secrets=services.secrets, token=token)
    check_rate(services.rate_limiter, caller.tenant)
    return caller


def key_is_active(services: Services, key_id: str) -> bool:
    with services.sessions() as session:
        return keys.is_active(session=session, key_id=key_id)
