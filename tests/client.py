"""What a client does in tests: read a job's stream to its end, read an error answer."""

from typing import Any

import httpx2
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

SEED_MLP: dict[str, Any] = {
    "layers": [
        {"type": "flatten"},
        {"type": "linear", "out_features": 10, "activation": "relu"},
        {"type": "linear", "out_features": 10, "activation": "relu"},
        {"type": "linear", "out_features": 10},
    ]
}


def small_job(**training: Any) -> dict[str, Any]:
    """A few-second synthetic job: the seed's optimizer on a small MLP."""
    return {
        "name": "small",
        "dataset": {"name": "synthetic", "samples": 512, "classes": 4, "input_shape": [16]},
        "model": {
            "layers": [
                {"type": "linear", "out_features": 32, "activation": "relu"},
                {"type": "linear", "out_features": 4},
            ]
        },
        "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
        "training": {"epochs": 3, "batch_size": 32, **training},
        "tags": ["test"],
    }


def upload_mnist(client: TestClient) -> dict[str, Any]:
    """The MNIST test split (10,000 digits), uploaded as gzip IDX files; the dataset."""
    from tests.conftest import MNIST

    images, labels = MNIST / "t10k-images-idx3-ubyte.gz", MNIST / "t10k-labels-idx1-ubyte.gz"
    response = client.post(
        "/v1/datasets",
        files={
            "images": (images.name, images.read_bytes(), "application/gzip"),
            "labels": (labels.name, labels.read_bytes(), "application/gzip"),
        },
        data={"format": "idx", "name": "mnist"},
    )
    assert response.status_code == 201, response.text
    dataset: dict[str, Any] = response.json()
    return dataset


def mlp_job(epochs: int, samples: int, batch_size: int = 32, hidden: int = 32) -> dict[str, Any]:
    """A synthetic job whose length is set by its epochs and samples (4 classes)."""
    return {
        "name": "mlp",
        "dataset": {"name": "synthetic", "samples": samples, "classes": 4, "input_shape": [16]},
        "model": {
            "layers": [
                {"type": "linear", "out_features": hidden, "activation": "relu"},
                {"type": "linear", "out_features": 4},
            ]
        },
        "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
        "training": {"epochs": epochs, "batch_size": batch_size},
    }


def read_stream(
    client: TestClient, job_id: str, after: int = 0, limit: int | None = None
) -> tuple[list[dict[str, Any]], int | None]:
    """Events until the server closes (and its close code), or the first `limit` events."""
    events: list[dict[str, Any]] = []
    with client.websocket_connect(f"/v1/jobs/{job_id}/stream?after={after}") as socket:
        try:
            while limit is None or len(events) < limit:
                events.append(socket.receive_json())
        except WebSocketDisconnect as closed:
            return events, closed.code
    return events, None


def events_of(client: TestClient, job_id: str) -> list[dict[str, Any]]:
    """Every stored event of a job, page after page."""
    found: list[dict[str, Any]] = []
    while True:
        after = found[-1]["seq"] if found else 0
        page = client.get(f"/v1/jobs/{job_id}/events?after={after}").json()
        found += page["items"]
        if page["next_cursor"] is None:
            return found


def statuses(events: list[dict[str, Any]]) -> list[str]:
    return [e["data"]["status"] for e in events if e["type"] == "status"]


def error_of(response: httpx2.Response, status_code: int) -> dict[str, Any]:
    """The `error` object of a response, after checking its status and its shape."""
    assert response.status_code == status_code, response.text
    body = response.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert set(error) == {"code", "message", "details"}
    return error


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def new_key(client: TestClient, tenant: str, name: str = "test") -> dict[str, Any]:
    """A new key for `tenant`, made with the admin token the `client` fixture sends."""
    response = client.post("/v1/keys", json={"tenant": tenant, "name": name})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created
