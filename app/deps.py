"""What routes depend on, as Annotated aliases so signatures read like prose."""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, WebSocket
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.broker import Dispatcher
from app.config import Settings
from app.events.notify import Notifier, SeqWatch
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
