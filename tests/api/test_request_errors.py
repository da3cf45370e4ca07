"""One error vocabulary: spec mistakes are invalid_spec with dotted fields and plain words."""

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.spec.schemas import SEED_JOB_EXAMPLE
from tests.client import error_of


def seed(**changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(json.dumps(SEED_JOB_EXAMPLE))
    spec["dataset"] = "synthetic"
    spec.update(changes)
    return spec


def test_a_typo_in_a_spec_is_invalid_spec_naming_the_dotted_field(client: TestClient) -> None:
    spec = seed()
    spec["model"]["layers"][1]["type"] = "linaer"

    error = error_of(client.post("/v1/jobs", json=spec), 422)

    assert error["code"] == "invalid_spec"
    assert {d["field"] for d in error["details"]} == {"model.layers[1].type"}


def test_the_ddp_batch_error_names_training_batch_size_in_plain_words(client: TestClient) -> None:
    spec = seed(distributed={"strategy": "ddp", "processes": 3})

    error = error_of(client.post("/v1/jobs", json=spec), 422)

    assert error["code"] == "invalid_spec"
    assert [d["field"] for d in error["details"]] == ["training.batch_size"]
    assert not any("Value error" in d["message"] for d in error["details"])
    assert "Value error" not in error["message"]


def test_invalid_json_names_the_line_and_column(client: TestClient) -> None:
    body = b'{\n  "name": "broken",\n  "dataset" "synthetic"\n}'

    response = client.post("/v1/jobs", content=body, headers={"content-type": "application/json"})

    error = error_of(response, 422)
    assert "line 3, column 13" in error["message"]
    assert [d["field"] for d in error["details"]] == ["body"]


@pytest.mark.parametrize("content_type", [None, "text/plain"])
def test_a_body_not_sent_as_json_is_a_415_naming_the_content_type(
    client: TestClient, content_type: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}

    response = client.post("/v1/jobs", content=json.dumps(seed()).encode(), headers=headers)

    error = error_of(response, 415)
    assert error["code"] == "unsupported_media_type"
    assert "Content-Type: application/json" in error["message"]


def test_a_missing_form_field_stays_a_validation_error(client: TestClient) -> None:
    response = client.post("/v1/datasets", data={"format": "npz"}, files={"x": ("x", b"1")})

    assert response.status_code in (400, 422)
    assert error_of(response, response.status_code)["code"] != "unsupported_media_type"


def test_a_multi_worker_job_on_an_empty_fleet_is_a_422_naming_the_count(
    client: TestClient,
) -> None:
    spec = seed(distributed={"strategy": "ddp", "nodes": 2, "processes": 1})

    error = error_of(client.post("/v1/jobs", json=spec), 422)

    assert error["code"] == "invalid_spec"
    assert [d["field"] for d in error["details"]] == ["distributed.nodes"]
    assert "the fleet has registered 0" in error["message"]
