"""The jobs API: submit, validate, list, page, cancel, events and the websocket stream.

Every test runs on SQLite and on Postgres (+ Redis pub/sub); no worker runs, so jobs stay
queued unless a test cancels them.
"""

import base64
import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from app.spec.schemas import SEED_JOB_EXAMPLE
from tests.client import error_of, read_stream, small_job, statuses
from tests.conftest import ADMIN_HEADERS

pytestmark = pytest.mark.usefixtures("backend")

SEED_PARAMS = 784 * 10 + 10 + 10 * 10 + 10 + 10 * 10 + 10  # 8070
NORMAL_CLOSE = 1000
NOT_FOUND_CLOSE = 4404

Spec = dict[str, Any]


def seed_spec() -> Spec:
    return copy.deepcopy(SEED_JOB_EXAMPLE)


def submit(client: TestClient, spec: Spec) -> dict[str, Any]:
    response = client.post("/v1/jobs", json=spec)
    assert response.status_code == 201, response.text
    job: dict[str, Any] = response.json()
    return job


def fields_of(error: dict[str, Any]) -> list[str]:
    return [detail["field"] for detail in error["details"]]


def assert_no_jobs(client: TestClient) -> None:
    response = client.get("/v1/jobs")
    assert response.status_code == 200
    assert response.json() == {"items": [], "next_cursor": None}


def cancelled_job(client: TestClient) -> dict[str, Any]:
    job = submit(client, small_job())
    response = client.post(f"/v1/jobs/{job['id']}/cancel")
    assert response.status_code == 202, response.text
    cancelled: dict[str, Any] = response.json()
    return cancelled


# --- submit -------------------------------------------------------------------------------


def test_submit_returns_201_queued_job_with_its_cost_when_spec_is_the_seed_example(
    client: TestClient,
) -> None:
    job = submit(client, seed_spec())

    assert job["status"] == "queued"
    assert job["reason"] is None
    assert job["attempt"] == 0
    assert job["name"] == "mnist-mlp"
    assert job["params"] == SEED_PARAMS == 8070
    assert job["flops_per_sample"] > 0
    assert job["tags"] == ["example"]
    assert job["last_seq"] == 1
    assert job["dataset_id"] is None
    assert job["spec"]["dataset"]["name"] == "synthetic"
    assert job["result"] is None
    assert job["started_at"] is None and job["finished_at"] is None


def test_get_job_returns_the_submitted_job(client: TestClient) -> None:
    job = submit(client, seed_spec())

    response = client.get(f"/v1/jobs/{job['id']}")

    assert response.status_code == 200
    assert response.json() == job


def test_events_of_a_new_job_hold_exactly_the_queued_status_event(client: TestClient) -> None:
    job = submit(client, seed_spec())

    response = client.get(f"/v1/jobs/{job['id']}/events")

    assert response.status_code == 200
    page = response.json()
    assert page["next_cursor"] is None
    [event] = page["items"]
    assert event["seq"] == 1
    assert event["type"] == "status"
    assert event["data"] == {"status": "queued", "reason": "submitted"}


def _last_width_not_classes(spec: Spec) -> None:
    spec["model"]["layers"][3]["out_features"] = 7


def _out_features_a_string(spec: Spec) -> None:
    spec["model"]["layers"][3]["out_features"] = "ten"


def _misspelt_optimizer_field(spec: Spec) -> None:
    spec["optimizer"]["momentun"] = spec["optimizer"].pop("momentum")


def _unknown_layer_type(spec: Spec) -> None:
    spec["model"]["layers"][1] = {"type": "conv9", "out_features": 10}


def _batch_size_zero(spec: Spec) -> None:
    spec["training"]["batch_size"] = 0


def _unknown_dataset(spec: Spec) -> None:
    spec["dataset"] = "ds_does_not_exist"


def _linear_without_flatten(spec: Spec) -> None:
    del spec["model"]["layers"][0]  # the synthetic input is [1, 28, 28]


@pytest.mark.parametrize(
    ("mutate", "code", "field"),
    [
        pytest.param(
            _last_width_not_classes,
            "invalid_spec",
            "model.layers[3].out_features",
            id="last-width-not-classes",
        ),
        pytest.param(
            _out_features_a_string,
            "invalid_spec",
            "model.layers[3].out_features",
            id="out-features-a-string",
        ),
        pytest.param(
            _misspelt_optimizer_field,
            "invalid_spec",
            "optimizer.momentun",
            id="misspelt-optimizer-field",
        ),
        pytest.param(_batch_size_zero, "invalid_spec", "training.batch_size", id="batch-size-zero"),
        pytest.param(_unknown_dataset, "invalid_spec", "dataset", id="unknown-dataset"),
        pytest.param(
            _linear_without_flatten, "invalid_spec", "model.layers[0]", id="linear-on-3d-input"
        ),
    ],
)
def test_submit_returns_422_naming_the_field_and_stores_nothing_when_spec_is_invalid(
    client: TestClient, mutate: Callable[[Spec], None], code: str, field: str
) -> None:
    spec = seed_spec()
    mutate(spec)

    error = error_of(client.post("/v1/jobs", json=spec), 422)

    assert error["code"] == code
    assert field in fields_of(error)
    assert_no_jobs(client)


def test_submit_returns_422_naming_the_layer_when_its_type_is_unknown(client: TestClient) -> None:
    spec = seed_spec()
    _unknown_layer_type(spec)

    error = error_of(client.post("/v1/jobs", json=spec), 422)

    assert error["code"] == "invalid_spec"
    assert error["details"]
    assert all(field.startswith("model.layers[1]") for field in fields_of(error))
    assert_no_jobs(client)


def test_submit_returns_422_mentioning_json_when_body_is_malformed(client: TestClient) -> None:
    response = client.post(
        "/v1/jobs", content=b'{"name": "broken",', headers={"content-type": "application/json"}
    )

    error = error_of(response, 422)

    assert "JSON" in error["message"]
    assert fields_of(error) == ["body"]
    assert_no_jobs(client)


def test_submit_returns_4xx_when_body_is_a_list(client: TestClient) -> None:
    response = client.post("/v1/jobs", json=[seed_spec()])

    assert 400 <= response.status_code < 500, response.text
    error_of(response, response.status_code)
    assert_no_jobs(client)


@pytest.mark.parametrize(
    ("section", "values", "field"),
    [
        pytest.param(
            "training",
            {"target": {"metric": "val_accuracy", "value": float("nan")}},
            "training.target.value",
            id="nan-target",
        ),
        pytest.param(
            "schedule",
            {"name": "cosine", "min_lr": float("inf")},
            "schedule.min_lr",
            id="infinite-min-lr",
        ),
    ],
)
def test_submit_returns_422_when_a_float_is_not_finite(
    client: TestClient, section: str, values: dict[str, Any], field: str
) -> None:
    spec = seed_spec()
    spec[section] = {**spec[section], **values} if section == "training" else values
    body = json.dumps(spec)  # json.dumps writes NaN and Infinity, as many clients do

    response = client.post("/v1/jobs", content=body, headers={"content-type": "application/json"})

    error = error_of(response, 422)
    assert any(f.startswith(field) for f in fields_of(error))
    assert_no_jobs(client)


def test_nul_character_in_a_string_is_a_client_error_naming_the_field(client: TestClient) -> None:
    spec = seed_spec()
    spec["name"] = "nul\x00name"
    assert fields_of(error_of(client.post("/v1/jobs", json=spec), 422)) == ["name"]

    spec = seed_spec()
    spec["dataset"] = "ds_\x00"
    assert fields_of(error_of(client.post("/v1/jobs", json=spec), 422)) == ["dataset"]
    assert error_of(client.get("/v1/jobs/job_%00"), 400)["code"] == "bad_request"
    assert error_of(client.get("/v1/jobs", params={"tag": "a\x00"}), 400)["code"] == "bad_request"
    assert_no_jobs(client)


# --- list and page ------------------------------------------------------------------------


TAGS = [["vision"], ["vision", "fast"], ["text"], ["fast"], []]


def submit_tagged(client: TestClient) -> list[dict[str, Any]]:
    """Five queued jobs, oldest first, with the tags of TAGS."""
    jobs = []
    for i, tags in enumerate(TAGS):
        spec = seed_spec()
        spec["name"] = f"job-{i}"
        spec["tags"] = tags
        jobs.append(submit(client, spec))
    return jobs


def listed_ids(client: TestClient, **params: Any) -> list[str]:
    response = client.get("/v1/jobs", params=params)
    assert response.status_code == 200, response.text
    return [job["id"] for job in response.json()["items"]]


def test_list_returns_jobs_newest_first(client: TestClient) -> None:
    jobs = submit_tagged(client)

    assert listed_ids(client) == [job["id"] for job in reversed(jobs)]


@pytest.mark.parametrize(("tag", "indices"), [("vision", [1, 0]), ("fast", [3, 1]), ("text", [2])])
def test_list_returns_only_jobs_with_the_tag_when_filtered_by_tag(
    client: TestClient, tag: str, indices: list[int]
) -> None:
    jobs = submit_tagged(client)

    assert listed_ids(client, tag=tag) == [jobs[i]["id"] for i in indices]


def test_list_returns_nothing_when_no_job_has_the_tag(client: TestClient) -> None:
    submit_tagged(client)

    assert listed_ids(client, tag="audio") == []


def test_list_filters_by_status(client: TestClient) -> None:
    jobs = submit_tagged(client)
    cancelled = client.post(f"/v1/jobs/{jobs[2]['id']}/cancel")
    assert cancelled.status_code == 202

    queued = [job["id"] for i, job in reversed(list(enumerate(jobs))) if i != 2]
    assert listed_ids(client, status="queued") == queued
    assert listed_ids(client, status="cancelled") == [jobs[2]["id"]]
    assert listed_ids(client, status="running") == []


def test_list_returns_422_when_status_is_unknown(client: TestClient) -> None:
    error = error_of(client.get("/v1/jobs", params={"status": "bogus"}), 422)

    assert fields_of(error) == ["status"]


def test_pages_of_two_walk_every_job_once_newest_first(client: TestClient) -> None:
    jobs = submit_tagged(client)
    seen: list[str] = []
    cursors: list[str | None] = []
    cursor: str | None = None

    for _ in range(len(jobs)):  # a bound, so a cursor that loops fails instead of hanging
        params: dict[str, Any] = {"limit": 2}
        if cursor is not None:
            params["cursor"] = cursor
        response = client.get("/v1/jobs", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= 2
        seen += [job["id"] for job in page["items"]]
        cursor = page["next_cursor"]
        cursors.append(cursor)
        if cursor is None:
            break

    assert seen == [job["id"] for job in reversed(jobs)]
    assert cursors[-1] is None
    assert all(isinstance(c, str) for c in cursors[:-1])


def test_page_after_a_full_last_page_is_empty_without_a_cursor(client: TestClient) -> None:
    submit(client, seed_spec())
    submit(client, seed_spec())

    first = client.get("/v1/jobs", params={"limit": 2}).json()
    # A full page cannot know whether more follow; the page after it must then be empty.
    if first["next_cursor"] is not None:
        rest = client.get("/v1/jobs", params={"limit": 2, "cursor": first["next_cursor"]})
        assert rest.json() == {"items": [], "next_cursor": None}
    assert len(first["items"]) == 2


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage!!",
        "%%%",
        base64.urlsafe_b64encode(b"no separator").decode(),
        base64.urlsafe_b64encode(b"not a date|job_1").decode(),
        base64.urlsafe_b64encode(b"2024-01-01T00:00:00|job_1").decode(),  # no time zone
        base64.urlsafe_b64encode(b"\xff\xfe|x").decode(),
    ],
)
def test_list_returns_422_invalid_cursor_when_cursor_is_not_one_the_api_handed_out(
    client: TestClient, cursor: str
) -> None:
    submit(client, seed_spec())

    error = error_of(client.get("/v1/jobs", params={"cursor": cursor}), 422)

    assert error["code"] == "invalid_cursor"


def test_list_returns_422_invalid_cursor_when_cursor_time_is_out_of_range(
    client: TestClient,
) -> None:
    cursor = base64.urlsafe_b64encode(b"0001-01-01T00:00:00+14:00|job_1").decode()

    error = error_of(client.get("/v1/jobs", params={"cursor": cursor}), 422)

    assert error["code"] == "invalid_cursor"


def test_list_caps_limit_at_the_servers_page_size_max(settings: Settings) -> None:
    capped = settings.model_copy(update={"page_size_max": 3})
    with TestClient(create_app(capped), headers=ADMIN_HEADERS) as client:
        submit_tagged(client)

        page = client.get("/v1/jobs", params={"limit": 1000}).json()

    assert len(page["items"]) == 3
    assert page["next_cursor"] is not None


def test_list_returns_422_when_limit_is_zero(client: TestClient) -> None:
    error = error_of(client.get("/v1/jobs", params={"limit": 0}), 422)

    assert fields_of(error) == ["limit"]


# --- cancel, get, events ------------------------------------------------------------------


def test_cancel_returns_202_cancelled_when_job_is_queued(client: TestClient) -> None:
    job = submit(client, small_job())

    response = client.post(f"/v1/jobs/{job['id']}/cancel")

    assert response.status_code == 202
    cancelled = response.json()
    assert cancelled["id"] == job["id"]
    assert cancelled["status"] == "cancelled"
    assert cancelled["reason"] == "cancelled"
    assert cancelled["finished_at"] is not None
    assert cancelled["last_seq"] == 2
    assert client.get(f"/v1/jobs/{job['id']}").json()["status"] == "cancelled"


def test_cancel_returns_409_invalid_transition_when_job_already_cancelled(
    client: TestClient,
) -> None:
    job = cancelled_job(client)

    error = error_of(client.post(f"/v1/jobs/{job['id']}/cancel"), 409)

    assert error["code"] == "invalid_transition"
    assert client.get(f"/v1/jobs/{job['id']}").json()["last_seq"] == 2


def test_cancel_returns_404_job_not_found_when_job_is_unknown(client: TestClient) -> None:
    error = error_of(client.post("/v1/jobs/job_unknown/cancel"), 404)

    assert error["code"] == "job_not_found"


def test_get_returns_404_job_not_found_when_job_is_unknown(client: TestClient) -> None:
    error = error_of(client.get("/v1/jobs/job_unknown"), 404)

    assert error["code"] == "job_not_found"
    assert error["details"] == []


def test_events_return_404_when_job_is_unknown(client: TestClient) -> None:
    error = error_of(client.get("/v1/jobs/job_unknown/events"), 404)

    assert error["code"] == "job_not_found"


def test_events_after_1_return_only_the_cancelled_event_when_job_was_cancelled(
    client: TestClient,
) -> None:
    job = cancelled_job(client)

    response = client.get(f"/v1/jobs/{job['id']}/events", params={"after": 1})

    assert response.status_code == 200
    [event] = response.json()["items"]
    assert event["seq"] == 2
    assert event["type"] == "status"
    assert event["data"] == {"status": "cancelled", "reason": "cancelled"}


def test_events_return_422_when_after_is_negative(client: TestClient) -> None:
    job = submit(client, small_job())

    error = error_of(client.get(f"/v1/jobs/{job['id']}/events", params={"after": -1}), 422)

    assert fields_of(error) == ["after"]


@pytest.mark.parametrize("resource", ["events", "metrics"])
def test_job_log_returns_200_or_422_when_after_is_beyond_any_integer_column(
    client: TestClient, resource: str
) -> None:
    job = submit(client, small_job())

    response = client.get(f"/v1/jobs/{job['id']}/{resource}", params={"after": 10**20})

    assert response.status_code in (200, 422), response.text


# --- websocket stream ---------------------------------------------------------------------


def test_stream_replays_queued_and_cancelled_then_closes_1000_when_job_was_cancelled(
    client: TestClient,
) -> None:
    job = cancelled_job(client)

    events, code = read_stream(client, job["id"])

    assert code == NORMAL_CLOSE
    assert statuses(events) == ["queued", "cancelled"]
    assert [event["seq"] for event in events] == [1, 2]
    assert events[1]["data"]["reason"] == "cancelled"
    assert set(events[0]) == {"seq", "type", "time", "data"}


def test_stream_after_1_replays_only_the_cancelled_event(client: TestClient) -> None:
    job = cancelled_job(client)

    events, code = read_stream(client, job["id"], after=1)

    assert code == NORMAL_CLOSE
    assert [event["seq"] for event in events] == [2]
    assert statuses(events) == ["cancelled"]


def test_stream_closes_1000_without_events_when_after_is_past_the_end_of_a_finished_job(
    client: TestClient,
) -> None:
    job = cancelled_job(client)

    events, code = read_stream(client, job["id"], after=job["last_seq"] + 5)

    assert code == NORMAL_CLOSE
    assert events == []


def test_stream_closes_4404_without_events_when_job_is_unknown(client: TestClient) -> None:
    events, code = read_stream(client, "job_unknown")

    assert code == NOT_FOUND_CLOSE
    assert events == []


def test_stream_closes_without_events_when_after_is_beyond_any_integer_column(
    client: TestClient,
) -> None:
    job = cancelled_job(client)

    events, code = read_stream(client, job["id"], after=10**20)

    assert events == []
    assert code in (NORMAL_CLOSE, 4422)
