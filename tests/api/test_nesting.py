"""Residual blocks nested inside residual blocks: one limit, below every recursion that
walks a net (validation, the stored spec's serialization, the trainer's modules).

Before the limit, depth 150 was stored and then answered 500 on every job route."""

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.spec.layers import MAX_RESIDUAL_DEPTH
from tests.client import error_of

pytestmark = pytest.mark.usefixtures("backend")
JSON = {"content-type": "application/json"}


def nested_layers_text(depth: int) -> str:
    """`depth` residual blocks, each the only layer of the one around it, as JSON text:
    built as text because the JSON encoder itself recurses past a few hundred levels."""
    inner = '{"type": "linear", "out_features": 16, "activation": "relu"}'
    for _ in range(depth):
        inner = '{"type": "residual", "layers": [' + inner + "]}"
    return (
        '[{"type": "flatten"}, {"type": "linear", "out_features": 16}, '
        + inner
        + ', {"type": "linear", "out_features": 4}]'
    )


def job_text(depth: int) -> str:
    spec: dict[str, Any] = {
        "name": "deep",
        "dataset": {"name": "synthetic", "samples": 64, "classes": 4, "input_shape": [8]},
        "model": {"layers": "LAYERS"},
        "optimizer": {"name": "sgd", "lr": 0.1},
        "training": {"epochs": 1, "batch_size": 8},
    }
    return json.dumps(spec).replace('"LAYERS"', nested_layers_text(depth))


def summary_text(depth: int) -> str:
    body = {"model": {"layers": "LAYERS"}, "input_shape": [8], "classes": 4}
    return json.dumps(body).replace('"LAYERS"', nested_layers_text(depth))


def deepest_path(depth: int) -> str:
    return "model.layers[2]" + ".layers[0]" * (depth - 1)


def test_a_net_nested_to_the_limit_is_stored_listed_and_summarised(client: TestClient) -> None:
    submitted = client.post("/v1/jobs", content=job_text(MAX_RESIDUAL_DEPTH), headers=JSON)

    assert submitted.status_code == 201, submitted.text
    job_id = submitted.json()["id"]
    assert client.get(f"/v1/jobs/{job_id}").status_code == 200
    assert [j["id"] for j in client.get("/v1/jobs").json()["items"]] == [job_id]
    summary = client.post(
        "/v1/models/summary", content=summary_text(MAX_RESIDUAL_DEPTH), headers=JSON
    )
    assert summary.status_code == 200, summary.text
    assert summary.json()["layers"][2]["type"] == "residual"


@pytest.mark.parametrize("depth", [MAX_RESIDUAL_DEPTH + 1, 100, 150, 300])
def test_a_net_nested_past_the_limit_is_a_422_naming_the_block_and_stores_nothing(
    client: TestClient, depth: int
) -> None:
    for route, body in (("/v1/jobs", job_text(depth)), ("/v1/models/summary", summary_text(depth))):
        error = error_of(client.post(route, content=body, headers=JSON), 422)

        assert [d["field"] for d in error["details"]] == ["model.layers"], route
        first_too_deep = deepest_path(MAX_RESIDUAL_DEPTH + 1)
        assert f"the one at {first_too_deep} is nested" in error["message"], route
    listed = client.get("/v1/jobs")
    assert listed.status_code == 200
    assert listed.json()["items"] == []


def test_a_body_nested_past_the_json_parser_is_a_422_not_a_500(client: TestClient) -> None:
    # About 2000 levels of JSON: the parser's own recursion gives up before any validator.
    for route, body in (("/v1/jobs", job_text(1000)), ("/v1/models/summary", summary_text(1000))):
        error = error_of(client.post(route, content=body, headers=JSON), 422)

        assert [d["field"] for d in error["details"]] == ["body"], route
        assert "nests too deep" in error["message"]
    assert client.get("/v1/jobs").json()["items"] == []
