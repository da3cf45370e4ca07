"""Health, readiness, Prometheus metrics, the OpenAPI console, the fleet and unknown routes."""

import re

from fastapi.testclient import TestClient

from app.spec.schemas import SEED_JOB_EXAMPLE
from tests.client import small_job

HTTP_METHODS = {"get", "post", "put", "patch", "delete"}


def queued_gauge(metrics_text: str) -> float:
    match = re.search(r'^taas_jobs\{status="queued"\} (\S+)$', metrics_text, re.MULTILINE)
    assert match, metrics_text
    return float(match.group(1))


def test_healthz_returns_200(client: TestClient) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_returns_200_ready_when_the_database_answers(client: TestClient) -> None:
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


def test_metrics_count_queued_jobs_in_prometheus_text(client: TestClient) -> None:
    assert queued_gauge(client.get("/metrics").text) == 0
    for _ in range(2):
        assert client.post("/v1/jobs", json=small_job()).status_code == 201

    response = client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "# TYPE taas_jobs gauge" in response.text
    assert queued_gauge(response.text) == 2
    assert 'taas_jobs{status="running"} 0.0' in response.text


def test_docs_serves_the_openapi_console_as_html(client: TestClient) -> None:
    response = client.get("/docs")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "<html" in response.text.lower()


def test_openapi_describes_every_v1_route(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    operations = [
        (path, method, operation)
        for path, item in paths.items()
        if path.startswith("/v1/")
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]

    documented = {(path, method) for path, method, _ in operations}
    assert {
        ("/v1/jobs", "post"),
        ("/v1/jobs", "get"),
        ("/v1/jobs/{job_id}", "get"),
        ("/v1/jobs/{job_id}/cancel", "post"),
        ("/v1/jobs/{job_id}/events", "get"),
        ("/v1/jobs/{job_id}/metrics", "get"),
        ("/v1/datasets", "post"),
        ("/v1/datasets", "get"),
        ("/v1/datasets/{dataset_id}", "get"),
        ("/v1/models/summary", "post"),
        ("/v1/workers", "get"),
    } <= documented
    undescribed = [
        (path, method)
        for path, method, operation in operations
        if not (operation.get("summary") and operation.get("description"))
    ]
    assert undescribed == []


def test_openapi_shows_the_seed_job_as_the_example_body_of_submit(client: TestClient) -> None:
    submit = client.get("/openapi.json").json()["paths"]["/v1/jobs"]["post"]

    example = submit["requestBody"]["content"]["application/json"]["examples"]["seed"]["value"]

    # The OpenAPI document omits null values, so the example lacks `"init": null`, its default.
    assert example == {key: value for key, value in SEED_JOB_EXAMPLE.items() if value is not None}
    assert client.post("/v1/jobs", json=example).status_code == 201


def test_workers_list_is_empty_when_no_worker_runs(client: TestClient) -> None:
    response = client.get("/v1/workers")

    assert response.status_code == 200
    # Lists answer {"items", "next_cursor"}; the fleet is one page.
    assert response.json() == {"items": [], "next_cursor": None}


def test_unknown_route_returns_404_in_the_error_format(client: TestClient) -> None:
    response = client.get("/v1/nothing-here")

    assert response.status_code == 404
    assert response.json() == {
        "error": {"code": "not_found", "message": "Not Found", "details": []}
    }


def test_wrong_method_returns_405_in_the_error_format(client: TestClient) -> None:
    response = client.delete("/v1/jobs")

    assert response.status_code == 405
    error = response.json()["error"]
    assert error["code"] == "method_not_allowed"
    assert error["details"] == []
