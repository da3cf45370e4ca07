"""create_app(settings): the FastAPI application assembled from its routers, guards and
error handlers (each in the module named for it)."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app import health, openapi
from app.checkpoints.router import router as checkpoints_router
from app.config import Settings, get_settings
from app.datasets.router import router as datasets_router
from app.description import API_DESCRIPTION
from app.error_handlers import install_error_handlers
from app.events.schemas import Event
from app.guards import RejectNul
from app.janitor import Janitor
from app.jobs.router import router as jobs_router
from app.keys.router import router as keys_router
from app.limits import FORM_FIELD_BYTES_MAX, FORM_FIELDS_MAX, FORM_FILES_MAX, BodyLimit
from app.nets.router import router as nets_router
from app.services import build_services
from app.sweeps.router import advise_router
from app.sweeps.router import router as sweeps_router
from app.ui.router import install_ui
from app.workers.router import router as workers_router


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
        # The console and the dashboard are served offline by install_ui, not from a CDN.
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
        nets_router,
        workers_router,
        sweeps_router,
        advise_router,
    ):
        app.include_router(router)

    install_ui(app)
    health.install(app, services)
    openapi.install(app, components=[Event])
    return app
