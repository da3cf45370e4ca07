"""Keys: made by the admin token, shown once, stored only as an HMAC, revocable at once
(open streams close within seconds), accepted as a header or a websocket subprotocol."""

import hashlib
import hmac
import logging
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from starlette.websockets import WebSocketDisconnect

from app.config import Settings
from app.deps import WS_BEARER_PROTOCOL
from app.main import create_app
from app.orm import Base
from tests.client import bearer, error_of, new_key, small_job
from tests.conftest import ADMIN_HEADERS, SECRET_KEY

pytestmark = pytest.mark.usefixtures("backend")
KEY_CHECK_S = 0.2


@pytest.fixture
def quick_client(settings: Settings) -> Iterator[TestClient]:
    """Streams re-check their key every KEY_CHECK_S."""
    quick = settings.model_copy(update={"key_check_s": KEY_CHECK_S})
    with TestClient(create_app(quick), headers=ADMIN_HEADERS) as client:
        yield client


def test_a_new_key_is_prefixed_random_shown_once_and_acts_as_its_tenant(
    client: TestClient,
) -> None:
    made = new_key(client, "alpha", name="laptop")

    assert made["key"].startswith("taas_") and len(made["key"]) >= 5 + 43  # 256 bits
    assert made["prefix"] == made["key"][:11]
    assert (made["tenant"], made["name"], made["revoked_at"]) == ("alpha", "laptop", None)
    listed = client.get("/v1/keys").json()["items"]
    assert [k["id"] for k in listed] == [made["id"]]
    assert "key" not in listed[0]
    job = client.post("/v1/jobs", json=small_job(), headers=bearer(made["key"])).json()
    assert client.get(f"/v1/jobs/{job['id']}").status_code == 404  # admin is another tenant
    assert client.get(f"/v1/jobs/{job['id']}", headers=bearer(made["key"])).status_code == 200


def test_only_the_admin_token_creates_keys(client: TestClient) -> None:
    alpha = bearer(new_key(client, "alpha")["key"])

    error = error_of(client.post("/v1/keys", json={"tenant": "beta"}, headers=alpha), 403)

    assert error["code"] == "admin_only"
    assert {k["tenant"] for k in client.get("/v1/keys").json()["items"]} == {"alpha"}


@pytest.mark.parametrize("tenant", ["", "Alpha", "a b", "a/b", "x" * 65, "-a"])
def test_a_tenant_name_outside_the_pattern_is_a_422(client: TestClient, tenant: str) -> None:
    error = error_of(client.post("/v1/keys", json={"tenant": tenant}), 422)

    assert error["details"][0]["field"] == "tenant"
    assert client.get("/v1/keys").json()["items"] == []


@pytest.mark.parametrize("name", ["lap\x00top", "tab\there", "line\nbreak", "\x7f"])
def test_a_key_name_with_a_control_character_is_a_422_and_stores_nothing(
    client: TestClient, name: str
) -> None:
    # Postgres cannot store NUL in text: before the pattern this was a 500 there.
    error = error_of(client.post("/v1/keys", json={"tenant": "alpha", "name": name}), 422)

    assert error["details"][0]["field"] == "name"
    assert client.get("/v1/keys").json()["items"] == []


def test_a_revoked_key_is_refused_from_the_next_request(client: TestClient) -> None:
    made = new_key(client, "alpha")
    assert client.get("/v1/jobs", headers=bearer(made["key"])).status_code == 200

    assert client.delete(f"/v1/keys/{made['id']}").status_code == 204

    error = error_of(client.get("/v1/jobs", headers=bearer(made["key"])), 401)
    assert error["code"] == "unauthorized"
    assert client.get("/v1/keys").json()["items"][0]["revoked_at"] is not None


def test_a_tenant_may_revoke_its_own_keys_but_not_another_tenants(client: TestClient) -> None:
    alpha, spare, beta = new_key(client, "alpha"), new_key(client, "alpha"), new_key(client, "b")

    assert client.delete(f"/v1/keys/{beta['id']}", headers=bearer(alpha["key"])).status_code == 404
    assert client.delete(f"/v1/keys/{spare['id']}", headers=bearer(alpha["key"])).status_code == 204
    assert client.get("/v1/jobs", headers=bearer(beta["key"])).status_code == 200


def test_an_open_stream_closes_within_seconds_once_its_key_is_revoked(
    quick_client: TestClient,
) -> None:
    made = new_key(quick_client, "alpha")
    job = quick_client.post("/v1/jobs", json=small_job(), headers=bearer(made["key"])).json()
    url = f"/v1/jobs/{job['id']}/stream"

    with quick_client.websocket_connect(url, headers=bearer(made["key"])) as socket:
        assert socket.receive_json()["data"]["status"] == "queued"  # streaming, no worker
        quick_client.delete(f"/v1/keys/{made['id']}")
        with pytest.raises(WebSocketDisconnect) as closed:
            socket.receive_json()  # the job never ends: only the revocation closes it

    assert closed.value.code == 4401


def test_a_browser_sends_its_key_as_a_websocket_subprotocol(client: TestClient) -> None:
    made = new_key(client, "alpha")
    job = client.post("/v1/jobs", json=small_job(), headers=bearer(made["key"])).json()
    client.headers.pop("Authorization")
    url = f"/v1/jobs/{job['id']}/stream"

    with client.websocket_connect(url, subprotocols=[WS_BEARER_PROTOCOL, made["key"]]) as socket:
        assert socket.accepted_subprotocol == WS_BEARER_PROTOCOL
        assert socket.receive_json()["data"]["status"] == "queued"

    wrong = [WS_BEARER_PROTOCOL, "taas_x"]
    with (
        client.websocket_connect(url, subprotocols=wrong) as socket,
        pytest.raises(WebSocketDisconnect) as closed,
    ):
        socket.receive_json()
    assert closed.value.code == 4401


def test_no_key_is_kept_in_clear_in_the_database_or_the_logs(
    client: TestClient, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    made = new_key(client, "alpha")
    key = made["key"]
    client.post("/v1/jobs", json=small_job(), headers=bearer(key))
    client.get("/v1/jobs/nope", headers=bearer(key))
    client.delete(f"/v1/keys/{made['id']}")
    client.get("/v1/jobs", headers=bearer(key))  # refused: revoked

    services = client.app.state.services  # type: ignore[attr-defined]
    with services.engine.connect() as connection:
        rows = [
            connection.execute(text(f"SELECT * FROM {table.name}")).all()
            for table in Base.metadata.sorted_tables
        ]
    stored = repr(rows)
    assert key not in stored and key[11:] not in stored
    assert hmac.new(SECRET_KEY.encode(), key.encode(), hashlib.sha256).hexdigest() in stored
    assert caplog.records  # the service did log, just never the key
    assert key not in caplog.text and key[11:] not in caplog.text
