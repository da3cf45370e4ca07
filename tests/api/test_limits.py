"""Limits: bodies (413), request rates and queued jobs (429), per-job caps (422), and
idempotent submission, on both databases (rates in Redis with Postgres, in-process else)."""

import io
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from tests.client import bearer, error_of, new_key, small_job
from tests.conftest import ADMIN_HEADERS

pytestmark = pytest.mark.usefixtures("backend")


def limited(settings: Settings, **limits: Any) -> TestClient:
    return TestClient(create_app(settings.model_copy(update=limits)), headers=ADMIN_HEADERS)


@pytest.fixture
def small_bodies(settings: Settings) -> Iterator[TestClient]:
    with limited(settings, max_json_bytes=2000, max_upload_bytes=1000) as client:
        yield client


def jobs_stored(client: TestClient) -> list[Any]:
    items: list[Any] = client.get("/v1/jobs").json()["items"]
    return items


# --- bodies --------------------------------------------------------------------------------


def test_a_json_body_over_the_limit_is_a_413_by_its_content_length(
    small_bodies: TestClient,
) -> None:
    body = {**small_job(), "name": "x" * 3000}

    error = error_of(small_bodies.post("/v1/jobs", json=body), 413)

    assert error["code"] == "body_too_large"
    assert "2000" in error["message"]
    assert jobs_stored(small_bodies) == []


def test_a_streamed_json_body_without_a_length_is_a_413_once_it_passes_the_limit(
    small_bodies: TestClient,
) -> None:
    chunks = iter([b'{"name": "', *[b"x" * 500] * 10, b'"}'])  # chunked: no Content-Length

    response = small_bodies.post(
        "/v1/jobs", content=chunks, headers={"content-type": "application/json"}
    )

    assert error_of(response, 413)["code"] == "body_too_large"
    assert jobs_stored(small_bodies) == []


def test_an_upload_body_over_the_limit_is_a_413_while_it_streams(
    small_bodies: TestClient,
) -> None:
    boundary = "b0undary"
    part = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n\r\n'
    chunks = iter([part.encode(), *[b"\0" * 1000] * 100, f"\r\n--{boundary}--\r\n".encode()])

    response = small_bodies.post(
        "/v1/checkpoints",
        content=chunks,
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )

    assert error_of(response, 413)["code"] == "upload_too_large"
    assert small_bodies.get("/v1/checkpoints").json()["items"] == []


def test_a_multipart_form_with_too_many_fields_is_refused(client: TestClient) -> None:
    fields = {f"field{i}": "x" for i in range(50)}

    response = client.post("/v1/datasets", data=fields, files={"file": ("d.npz", b"x")})

    assert 400 <= response.status_code < 500
    assert client.get("/v1/datasets").json()["items"] == []


def test_a_dataset_whose_arrays_are_over_the_cap_is_a_413(settings: Settings) -> None:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, x=np.zeros((1000, 16), np.float32), y=np.arange(1000) % 2)

    with limited(settings, max_dataset_bytes=10_000) as client:
        response = client.post(
            "/v1/datasets", data={"format": "npz"}, files={"file": ("d.npz", buffer.getvalue())}
        )
        assert error_of(response, 413)["code"] == "upload_too_large"
        assert client.get("/v1/datasets").json()["items"] == []


# --- rates and caps per tenant ---------------------------------------------------------------


def test_a_tenant_over_its_request_rate_gets_429_with_retry_after_and_others_do_not(
    settings: Settings,
) -> None:
    with limited(settings, rate_burst=3, rate_per_s=0.01) as client:
        client.headers.pop("Authorization")
        alpha = bearer(new_key_as_admin(client, "alpha"))
        beta = bearer(new_key_as_admin(client, "beta"))
        answers = [client.get("/v1/jobs", headers=alpha).status_code for _ in range(4)]

        refused = client.get("/v1/jobs", headers=alpha)
        assert answers == [200, 200, 200, 429]
        assert error_of(refused, 429)["code"] == "rate_limited"
        assert int(refused.headers["retry-after"]) >= 1
        assert client.get("/v1/jobs", headers=beta).status_code == 200


def new_key_as_admin(client: TestClient, tenant: str) -> str:
    response = client.post("/v1/keys", json={"tenant": tenant}, headers=ADMIN_HEADERS)
    assert response.status_code == 201, response.text
    return str(response.json()["key"])


def test_a_tenant_with_its_most_queued_jobs_gets_429_until_one_leaves_the_queue(
    settings: Settings,
) -> None:
    with limited(settings, max_queued_jobs=2) as client:
        first, _ = (client.post("/v1/jobs", json=small_job()).json() for _ in range(2))

        refused = client.post("/v1/jobs", json=small_job())
        error = error_of(refused, 429)
        assert error["code"] == "too_many_jobs"
        assert int(refused.headers["Retry-After"]) > 0
        assert len(jobs_stored(client)) == 2
        other = bearer(new_key(client, "beta")["key"])
        assert client.post("/v1/jobs", json=small_job(), headers=other).status_code == 201

        client.post(f"/v1/jobs/{first['id']}/cancel")
        assert client.post("/v1/jobs", json=small_job()).status_code == 201


@pytest.mark.parametrize(
    ("limits", "job", "field"),
    [
        ({"max_epochs": 5}, small_job(epochs=6), "training.epochs"),
        ({"max_params": 100}, small_job(), "model"),
        ({"max_dataset_bytes": 1000}, small_job(), "dataset"),
    ],
)
def test_a_job_over_a_per_job_cap_is_a_422_naming_the_field(
    settings: Settings, limits: dict[str, int], job: dict[str, Any], field: str
) -> None:
    with limited(settings, **limits) as client:
        error = error_of(client.post("/v1/jobs", json=job), 422)

        assert [d["field"] for d in error["details"]] == [field]
        assert jobs_stored(client) == []


# --- idempotent submission -------------------------------------------------------------------


def submit(client: TestClient, key: str, job: dict[str, Any], **headers: str) -> Any:
    return client.post("/v1/jobs", json=job, headers={"Idempotency-Key": key, **headers})


def test_the_same_idempotency_key_and_body_return_the_same_job(client: TestClient) -> None:
    first = submit(client, "k-1", small_job())
    again = submit(client, "k-1", small_job())

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json()["id"] == first.json()["id"]
    assert len(jobs_stored(client)) == 1


def test_the_same_idempotency_key_with_another_body_is_a_422(client: TestClient) -> None:
    first = submit(client, "k-1", small_job()).json()

    error = error_of(submit(client, "k-1", small_job(epochs=4)), 422)

    assert error["code"] == "idempotency_key_reused"
    assert first["id"] in error["message"]
    assert [j["id"] for j in jobs_stored(client)] == [first["id"]]


def test_idempotency_keys_are_scoped_per_tenant(client: TestClient) -> None:
    beta = bearer(new_key(client, "beta")["key"])

    mine = submit(client, "k-1", small_job()).json()
    theirs = submit(client, "k-1", small_job(), **beta).json()

    assert mine["id"] != theirs["id"]


def test_an_idempotency_key_older_than_its_ttl_makes_a_new_job(settings: Settings) -> None:
    with limited(settings, idempotency_ttl_s=0.5) as client:
        first = submit(client, "k-1", small_job()).json()
        time.sleep(0.6)

        later = submit(client, "k-1", small_job(epochs=4))

        assert later.status_code == 201
        assert later.json()["id"] != first["id"]
        assert submit(client, "k-1", small_job(epochs=4)).json()["id"] == later.json()["id"]


def test_twenty_concurrent_submits_with_one_idempotency_key_make_one_job(
    client: TestClient,
) -> None:
    barrier = threading.Barrier(20)
    answers: list[Any] = []

    def race() -> None:
        barrier.wait()
        answers.append(submit(client, "together", small_job()))

    threads = [threading.Thread(target=race) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [a.status_code for a in answers] == [201] * 20
    assert len({a.json()["id"] for a in answers}) == 1
    assert len(jobs_stored(client)) == 1
