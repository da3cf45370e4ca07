"""create_app(settings): the FastAPI application, its routers and its one error format."""

import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from pydantic import BaseModel
from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from app import openapi, request_errors
from app.broker import Dispatcher
from app.checkpoints.router import router as checkpoints_router
from app.config import Settings, get_settings
from app.datasets.router import router as datasets_router
from app.db import make_engine, make_session_factory
from app.deps import Services
from app.description import API_DESCRIPTION
from app.errors import AppError, ErrorDetail
from app.events import service as events
from app.events.notify import SeqWatch, make_notifier
from app.events.schemas import Event
from app.janitor import Janitor
from app.jobs.router import router as jobs_router
from app.keys import service as keys
from app.keys.router import router as keys_router
from app.limits import (
    FORM_FIELD_BYTES_MAX,
    FORM_FIELDS_MAX,
    FORM_FILES_MAX,
    BodyLimit,
    BodyTooLarge,
    LocalRateLimiter,
    RateLimiter,
    RedisRateLimiter,
)
from app.models.router import router as models_router
from app.orm import Job
from app.spec.layers import LAYER_TYPES
from app.storage import Storage
from app.sweeps.router import advise_router
from app.sweeps.router import router as sweeps_router
from app.ui.router import install_ui
from app.workers.router import router as workers_router

logger = logging.getLogger(__name__)

# Union members pydantic names in an error's location; a field path skips them, so the
# user sees `model.layers[3].out_features`, not `model.layers.3.linear.out_features`.
UNION_TAGS = frozenset(
    {*LAYER_TYPES, "sgd", "adam", "adamw", "rmsprop", "adagrad"}
    | {"constant", "step", "cosine", "onecycle", "plateau", "str", "int", "float", "bool"}
    | {"tuple", "literal", "none"}
)


def field_path(loc: Sequence[Any], *, unknown_field: bool = False) -> str:
    parts = list(loc[1:]) if loc and loc[0] in ("body", "query", "path", "header") else list(loc)
    path = ""
    for i, part in enumerate(parts):
        named = unknown_field and i == len(parts) - 1  # the client's own key: keep it as sent
        if isinstance(part, int):
            path += f"[{part}]"
        elif not named and (part in UNION_TAGS or "[" in part or part[:1].isupper()):
            continue
        else:
            path += f".{part}" if path else str(part)
    return path or (str(loc[0]) if loc else "body")


class Ready(BaseModel):
    status: Literal["ready"]


METRICS_TEXT: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Prometheus text exposition format.",
        "content": {"text/plain; version=0.0.4": {"schema": {"type": "string"}}},
    }
}


def error_body(code: str, message: str, details: Iterable[ErrorDetail] = ()) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": [d.as_json() for d in details]}}


def validation_details(error: RequestValidationError) -> list[ErrorDetail]:
    details = []
    for problem in error.errors():
        if problem.get("type") == "json_invalid":
            details.append(
                ErrorDetail("body", request_errors.json_syntax_message(problem, error.body))
            )
            continue
        message = request_errors.plain(str(problem.get("msg", "invalid")))
        unknown = problem.get("type") == "extra_forbidden"
        if unknown:
            message = "unknown field"
        field = field_path(problem.get("loc", ()), unknown_field=unknown)
        if field == "body":
            field = request_errors.field_named_in(message) or field
        field, message = request_errors.union_tag(problem, field) or (field, message)
        details.append(ErrorDetail(field, message))
    return details


HTTP_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def allowed_methods(request: Request) -> list[str]:
    """The methods some route answers on this path, asked of the routes themselves."""
    return [
        method
        for method in HTTP_METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL
            for route in request.app.routes
        )
    ]


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def app_error(_: Request, error: AppError) -> JSONResponse:
        body = error_body(error.code, error.message, error.details)
        return JSONResponse(body, status_code=error.status_code, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        if (why := request_errors.not_json_content(request, list(error.errors()))) is not None:
            body = error_body("unsupported_media_type", why, [ErrorDetail("body", why)])
            return JSONResponse(body, status_code=415)
        details = validation_details(error)
        message = "; ".join(f"{d.field}: {d.message}" for d in details[:5]) or "invalid request"
        code = request_errors.validation_code(request)
        return JSONResponse(error_body(code, message, details), status_code=422)

    @app.exception_handler(BodyTooLarge)
    async def body_too_large(_: Request, error: BodyTooLarge) -> JSONResponse:
        return JSONResponse(error.body(), status_code=413)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        if isinstance(error.__cause__, RecursionError):
            # JSON nested past the parser's stack (FastAPI's 400): as invalid as any spec.
            message = "the JSON body nests too deep to parse"
            details = [ErrorDetail("body", message)]
            return JSONResponse(error_body("validation_error", message, details), status_code=422)
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
        headers = dict(error.headers or {})
        if error.status_code == 405:
            # Starlette names only the first route of the path; GET and POST of one path
            # are two routes, and Allow must list every method the path has.
            headers["Allow"] = ", ".join(allowed_methods(request))
        return JSONResponse(
            error_body(code, str(error.detail)), status_code=error.status_code, headers=headers
        )

    @app.exception_handler(OperationalError)
    async def database_down(_: Request, error: OperationalError) -> JSONResponse:
        logger.warning("database unavailable: %s", error)
        return JSONResponse(
            error_body("unavailable", "the database is unavailable; try again"), status_code=503
        )


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


class JobCollector(Collector):
    """Prometheus gauges read from the database at scrape time: the database owns state."""

    def __init__(self, services: Services) -> None:
        self._services = services

    def collect(self) -> Iterable[GaugeMetricFamily]:
        gauge = GaugeMetricFamily("taas_jobs", "Jobs by status.", labels=["status"])
        with self._services.sessions() as session:
            counts = dict(
                session.execute(select(Job.status, func.count()).group_by(Job.status)).all()
            )
        for status in ("queued", "running", "succeeded", "failed", "cancelled"):
            gauge.add_metric([status], counts.get(status, 0))
        yield gauge


def make_rate_limiter(settings: Settings) -> RateLimiter:
    if settings.redis_url:
        return RedisRateLimiter(
            settings.redis_url, settings.task_queue, settings.rate_per_s, settings.rate_burst
        )
    return LocalRateLimiter(settings.rate_per_s, settings.rate_burst)


def build_services(settings: Settings) -> Services:
    engine = make_engine(settings)
    sessions = make_session_factory(engine)
    return Services(
        settings=settings,
        engine=engine,
        sessions=sessions,
        seq_watch=SeqWatch(partial(events.newest_seq, sessions), settings.event_poll_s),
        storage=Storage(settings.artifacts_dir),
        dispatcher=Dispatcher(settings),
        notifier=make_notifier(settings.redis_url),
        secrets=keys.server_secrets(settings),
        rate_limiter=make_rate_limiter(settings),
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    services = build_services(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        janitor = Janitor(
            services.sessions,
            settings.artifacts_dir,
            grace_s=settings.janitor_grace_s,
            every_s=settings.janitor_every_s,
        )
        janitor.start()
        yield
        janitor.stop()
        services.engine.dispose()

    app = FastAPI(
        title="taas",
        version="0.1.0",
        summary="Training as a service: submit a PyTorch training job, watch it train, fast.",
        description=API_DESCRIPTION,
        # The console and the dashboard are served offline by ui_router, not from a CDN.
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
        generate_unique_id_function=openapi.operation_id,
        form_limits={
            "max_fields": FORM_FIELDS_MAX,
            "max_files": FORM_FILES_MAX,
            "max_part_size": FORM_FIELD_BYTES_MAX,
        },
    )
    app.state.services = services
    install_error_handlers(app)
    app.add_middleware(RejectNul)
    app.add_middleware(
        BodyLimit, json_bytes=settings.max_json_bytes, upload_bytes=settings.max_upload_bytes
    )
    for router in (
        keys_router,
        jobs_router,
        datasets_router,
        checkpoints_router,
        models_router,
        workers_router,
        sweeps_router,
        advise_router,
    ):
        app.include_router(router)

    install_ui(app)

    registry = CollectorRegistry()
    registry.register(JobCollector(services))

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """Liveness: the API process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], response_model=Ready, responses=openapi.errors(503))
    def readyz() -> JSONResponse:
        """Readiness: the database answers (503 otherwise)."""
        try:
            with services.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except OperationalError:
            return JSONResponse(error_body("unavailable", "database unavailable"), status_code=503)
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", tags=["health"], response_class=Response, responses=METRICS_TEXT)
    def metrics() -> Response:
        """Prometheus metrics."""
        return Response(generate_latest(registry), media_type="text/plain; version=0.0.4")

    openapi.install(app, components=[Event])
    return app
