"""Liveness, readiness and Prometheus metrics: what operators and orchestrators ask."""

from collections.abc import Iterable
from typing import Any, Literal

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from app import openapi
from app.deps import Services
from app.error_handlers import error_body
from app.jobs import repository as jobs_repository
from app.jobs.status import JobStatus


class Ready(BaseModel):
    status: Literal["ready"]


METRICS_TEXT: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Prometheus text exposition format.",
        "content": {"text/plain; version=0.0.4": {"schema": {"type": "string"}}},
    }
}


class JobCollector(Collector):
    """Prometheus gauges read from the database at scrape time: the database owns state."""

    def __init__(self, services: Services) -> None:
        self._services = services

    def collect(self) -> Iterable[GaugeMetricFamily]:
        gauge = GaugeMetricFamily("taas_jobs", "Jobs by status.", labels=["status"])
        with self._services.sessions() as session:
            counts = jobs_repository.count_by_status(session)
        for status in JobStatus:
            gauge.add_metric([status.value], counts.get(status, 0))
        yield gauge


def install(app: FastAPI, services: Services) -> None:
    """The health routes on `app` itself, outside /v1 (no key, no rate limit), with the
    app's own metrics registry."""
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
