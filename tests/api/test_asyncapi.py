"""The streams' AsyncAPI document: served beside the OpenAPI one, sharing its schemas."""

import copy
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from app.events.schemas import EventOut
from app.spec.schemas import SEED_JOB_EXAMPLE
from tests.conftest import ADMIN_HEADERS


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for value in node.values() for r in refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in refs(value)]
    return []


def resolve(document: dict[str, Any], ref: str) -> Any:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def test_asyncapi_shares_the_http_event_schemas(client: TestClient) -> None:
    openapi = client.get("/openapi.json").json()
    asyncapi = client.get("/asyncapi.json").json()
    assert asyncapi["asyncapi"] == "3.0.0"
    schemas = asyncapi["components"]["schemas"]
    for name in ("Event", "StatusEvent", "MetricData", "SweepOut", "JobStatus", "TrialOut"):
        assert schemas[name] == openapi["components"]["schemas"][name]
    events = openapi["paths"]["/v1/jobs/{job_id}/events"]["get"]["responses"]["200"]
    page = resolve(openapi, events["content"]["application/json"]["schema"]["$ref"])
    assert page["properties"]["items"]["items"] == {"$ref": "#/components/schemas/Event"}
    message = resolve(asyncapi, asyncapi["channels"]["jobStream"]["messages"]["event"]["$ref"])
    assert message["payload"] == {"$ref": "#/components/schemas/Event"}
    for ref in refs(asyncapi):
        resolve(asyncapi, ref)  # every reference resolves inside the document
    assert "/v1/jobs/{job_id}/stream" in openapi["info"]["description"]
    assert "/asyncapi.json" in openapi["info"]["description"]


def test_a_streamed_event_is_the_documented_message(client: TestClient) -> None:
    job = client.post("/v1/jobs", json=copy.deepcopy(SEED_JOB_EXAMPLE)).json()
    with client.websocket_connect(
        f"/v1/jobs/{job['id']}/stream?after=0", headers=ADMIN_HEADERS
    ) as socket:
        first = EventOut.model_validate_json(socket.receive_text())
    assert first.seq == 1 and first.type == "status"


@pytest.mark.parametrize("after", ["abc", "-1", "1.5", "true", str(2**31)])
def test_a_bad_after_closes_with_4422_after_accepting(client: TestClient, after: str) -> None:
    job = client.post("/v1/jobs", json=copy.deepcopy(SEED_JOB_EXAMPLE)).json()
    with (
        client.websocket_connect(
            f"/v1/jobs/{job['id']}/stream?after={after}", headers=ADMIN_HEADERS
        ) as socket,
        pytest.raises(WebSocketDisconnect) as closed,
    ):
        socket.receive_text()
    assert closed.value.code == 4422
    assert "after" in closed.value.reason
