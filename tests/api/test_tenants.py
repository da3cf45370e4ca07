"""Tenants are walled off: every /v1 route answers another tenant's object exactly like a
missing one (404), lists show only your own, and the websocket closes with no data."""

import io
import json
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx2
import numpy as np
import pytest
from fastapi.routing import APIRoute, APIWebSocketRoute
from fastapi.testclient import TestClient

from app.config import Settings
from tests.client import bearer, new_key, read_stream, small_job, statuses
from tests.conftest import Workers

pytestmark = pytest.mark.usefixtures("backend")

MISSING = {"job": "job_0000000000000000missing", "dataset": "ds_0000missing"}
MISSING |= {"checkpoint": "ckpt_0000missing", "key": "key_0000missing"}
MISSING |= {"queued_job": MISSING["job"], "spare_dataset": MISSING["dataset"]}
MISSING |= {"sweep": "sweep_0000missing"}


def npz_upload() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    np.savez(buffer, x=rng.standard_normal((64, 16)).astype(np.float32), y=np.arange(64) % 4)
    return {
        "data": {"format": "npz", "name": "mine"},
        "files": {"file": ("d.npz", buffer.getvalue())},
    }


def safetensors_upload() -> dict[str, Any]:
    # The first layer's bias of small_job's net: a warm start can load it.
    header = json.dumps({"0.bias": {"dtype": "F32", "shape": [32], "data_offsets": [0, 128]}})
    data = struct.pack("<Q", len(header)) + header.encode() + bytes(128)
    return {"files": {"file": ("w.safetensors", data)}}


def job_on(dataset: str, epochs: int = 1) -> dict[str, Any]:
    return {**small_job(epochs=epochs), "dataset": dataset}


def sweep_on(dataset: str) -> dict[str, Any]:
    space = {"optimizer.lr": [0.1]}
    return {"base": job_on(dataset), "space": space, "objective": {"maximize": "val_accuracy"}}


@dataclass
class Tenant:
    client: TestClient
    headers: dict[str, str]
    key_id: str

    def call(self, method: str, url: str, **kwargs: Any) -> httpx2.Response:
        return self.client.request(method, url, headers=self.headers, **kwargs)


@dataclass
class Objects:
    """One tenant's things: a finished job, a queued one, datasets, a checkpoint, a key."""

    job: str
    queued_job: str
    dataset: str
    spare_dataset: str  # no job uses it, so it can be deleted
    checkpoint: str
    key: str  # not the one the tenant calls with, so it can be revoked
    sweep: str


def make_objects(owner: Tenant, workers: Workers, spare_key: str) -> Objects:
    dataset, spare = (
        owner.call("POST", "/v1/datasets", **npz_upload()).json()["id"] for _ in range(2)
    )
    checkpoint = owner.call("POST", "/v1/checkpoints", **safetensors_upload()).json()["id"]
    workers.start()
    job = owner.call("POST", "/v1/jobs", json=job_on(dataset)).json()["id"]
    events, _ = read_stream_as(owner, job)
    assert statuses(events)[-1] == "succeeded", events
    workers.stop_all()
    queued = owner.call("POST", "/v1/jobs", json=job_on(dataset)).json()["id"]
    sweep = owner.call("POST", "/v1/sweeps", json=sweep_on(dataset)).json()["id"]
    return Objects(job, queued, dataset, spare, checkpoint, spare_key, sweep)


def read_stream_as(tenant: Tenant, job_id: str) -> tuple[list[dict[str, Any]], int | None]:
    before = tenant.client.headers["Authorization"]
    tenant.client.headers.update(tenant.headers)
    try:
        return read_stream(tenant.client, job_id)
    finally:
        tenant.client.headers["Authorization"] = before


# Each object route: (method, path with {id}, kind of id, extra request arguments).
# "body:" kinds name the object inside the request body instead of the path.
Route = tuple[str, str, str, Callable[[str], dict[str, Any]]]
NONE: Callable[[str], dict[str, Any]] = lambda _: {}  # noqa: E731
OBJECT_ROUTES: list[Route] = [
    ("GET", "/v1/jobs/{id}", "job", NONE),
    ("GET", "/v1/jobs/{id}/events", "job", NONE),
    ("GET", "/v1/jobs/{id}/metrics", "job", NONE),
    ("GET", "/v1/jobs/{id}/checkpoints", "job", NONE),
    ("GET", "/v1/jobs/{id}/model", "job", NONE),
    ("POST", "/v1/jobs/{id}/resume", "job", lambda _: {"json": {"epochs": 1}}),
    ("POST", "/v1/jobs/{id}/cancel", "queued_job", NONE),
    ("GET", "/v1/datasets/{id}", "dataset", NONE),
    ("GET", "/v1/checkpoints/{id}", "checkpoint", NONE),
    ("GET", "/v1/checkpoints/{id}/download", "checkpoint", NONE),
    ("POST", "/v1/jobs", "body:dataset", lambda ds: {"json": job_on(ds)}),
    (
        "POST",
        "/v1/jobs",
        "body:checkpoint",
        lambda ckpt: {"json": {**small_job(), "init": {"checkpoint": ckpt, "strict": False}}},
    ),
    (
        "POST",
        "/v1/models/summary",
        "body:dataset",
        lambda ds: {"json": {"dataset": ds, "model": {"preset": "mlp"}}},
    ),
    ("DELETE", "/v1/keys/{id}", "key", NONE),
    ("DELETE", "/v1/datasets/{id}", "spare_dataset", NONE),
    ("GET", "/v1/sweeps/{id}", "sweep", NONE),
    ("POST", "/v1/sweeps/{id}/cancel", "sweep", NONE),
    ("POST", "/v1/sweeps", "body:dataset", lambda ds: {"json": sweep_on(ds)}),
    (
        "POST",
        "/v1/advise",
        "body:dataset",
        lambda ds: {"json": {"base": job_on(ds), "target": {"value": 0.5}}},
    ),
]
# Routes that take no object id: each shows its caller only its own.
LIST_ROUTES = {("GET", "/v1/jobs"), ("GET", "/v1/datasets"), ("GET", "/v1/checkpoints")}
LIST_ROUTES |= {("GET", "/v1/keys"), ("GET", "/v1/workers"), ("POST", "/v1/datasets")}
LIST_ROUTES |= {("POST", "/v1/checkpoints"), ("POST", "/v1/keys"), ("GET", "/v1/sweeps")}
LIST_ROUTES |= {("GET", "/v1/keys/me")}


def api_routes(client: TestClient) -> set[tuple[str, str]]:
    """Every (method, path) under /v1, ids written {id}; "WS" for websockets."""
    found = set()
    for included in client.app.routes:  # type: ignore[attr-defined]
        router = getattr(included, "original_router", None)  # FastAPI's included routers
        for route in router.routes if router is not None else []:
            if not route.path.startswith("/v1/"):
                continue  # the console's and the dashboard's pages: open, like /docs
            path = re.sub(r"\{\w+\}", "{id}", route.path)
            if isinstance(route, APIRoute):
                found |= {(method, path) for method in route.methods}
            elif isinstance(route, APIWebSocketRoute):
                found.add(("WS", path))
    return found


def test_the_matrix_names_every_route_of_the_api(client: TestClient) -> None:
    named = {(method, path) for method, path, _, _ in OBJECT_ROUTES}
    named |= LIST_ROUTES | {("WS", "/v1/jobs/{id}/stream"), ("WS", "/v1/sweeps/{id}/stream")}

    assert api_routes(client) == named


def answer(tenant: Tenant, route: Route, object_id: str) -> httpx2.Response:
    method, path, _, extra = route
    return tenant.call(method, path.replace("{id}", object_id), **extra(object_id))


def test_another_tenants_objects_answer_like_missing_ones_on_every_route(
    client: TestClient, workers: Workers, settings: Settings
) -> None:
    alpha, beta = (
        Tenant(client, bearer((made := new_key(client, name))["key"]), made["id"])
        for name in ("alpha", "beta")
    )
    own = make_objects(alpha, workers, spare_key=new_key(client, "alpha")["id"])

    for route in OBJECT_ROUTES:
        kind = route[2].removeprefix("body:")
        theirs = answer(beta, route, getattr(own, kind))
        missing = answer(beta, route, MISSING[kind])
        mine = answer(alpha, route, getattr(own, kind))

        assert mine.is_success, (route, mine.text)
        assert theirs.status_code == missing.status_code, (route, theirs.text)
        assert theirs.status_code in (404, 422), (route, theirs.text)
        mask = (getattr(own, kind), MISSING[kind])
        assert theirs.json()["error"]["code"] == missing.json()["error"]["code"], route
        assert theirs.text.replace(*mask) == missing.text, route

    # Lists show only your own.
    for path in ("/v1/jobs", "/v1/datasets", "/v1/checkpoints", "/v1/sweeps"):
        assert beta.call("GET", path).json()["items"] == [], path
        assert alpha.call("GET", path).json()["items"] != [], path
    assert {k["tenant"] for k in beta.call("GET", "/v1/keys").json()["items"]} == {"beta"}
    assert {k["tenant"] for k in client.get("/v1/keys").json()["items"]} == {"alpha", "beta"}
    job_filter = {"params": {"job_id": own.job}}
    assert beta.call("GET", "/v1/checkpoints", **job_filter).json()["items"] == []
    assert alpha.call("GET", "/v1/checkpoints", **job_filter).json()["items"] != []

    # The stream: yours replays and ends with 1000; theirs closes like a missing job's.
    events, code = read_stream_as(alpha, own.job)
    assert (statuses(events)[-1], code) == ("succeeded", 1000)
    assert read_stream_as(beta, own.job) == ([], 4404)
    assert read_stream_as(beta, MISSING["job"]) == ([], 4404)


def test_every_v1_route_refuses_a_request_without_a_valid_key(client: TestClient) -> None:
    for method, path in api_routes(client):
        if method == "WS":
            continue
        for headers in (
            {"Authorization": ""},
            bearer("taas_not-a-key"),
            {"Authorization": "Basic x"},
        ):
            response = client.request(method, path.replace("{id}", "x"), headers=headers)
            assert response.status_code == 401, (method, path, response.text)
            assert response.json()["error"]["code"] == "unauthorized"
            assert response.headers["www-authenticate"] == "Bearer"
    client.headers.pop("Authorization")
    assert read_stream(client, MISSING["job"]) == ([], 4401)


def test_health_readiness_and_metrics_need_no_key(client: TestClient) -> None:
    client.headers.pop("Authorization")
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
        assert client.get(path).status_code == 200, path
