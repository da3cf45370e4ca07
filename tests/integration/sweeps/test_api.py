"""Sweeps through the API: validation before anything runs, tenant scoping, cancel."""

from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from tests.client import bearer, error_of, new_key, small_job

pytestmark = pytest.mark.usefixtures("backend")
TARGET = {"metric": "val_accuracy", "value": 0.9}


def sweep(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "base": small_job(),
        "space": {"optimizer.lr": [0.01, 0.1], "training.batch_size": [16, 64]},
        "objective": {"minimize": "time_to_target", "target": TARGET},
        "budget": {"max_trials": 8, "max_parallel": 1},
    }
    return {**body, **fields}


def jobs_of(client: TestClient) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = client.get("/v1/jobs").json()["items"]
    return items


@pytest.mark.parametrize(
    ("space", "field", "words"),
    [
        ({"optimizer.momentun": [0.5]}, "space.optimizer.momentun", "no such field"),
        ({"training.batch_size": [32, -1]}, "space.training.batch_size", "-1 makes the spec"),
        ({"optimizer.name": ["sgd", "adam"]}, "space.optimizer.name", "momentum"),
        ({"model.layers": [[{"type": "linear", "out_features": 3}]]}, "space.model.layers", ""),
        ({"optimizer.lr": {"log_uniform": [1e-4, 1e-1]}}, "space.optimizer.lr", "grid needs"),
        ({}, "space", ""),
    ],
)
def test_invalid_space_is_a_422_naming_the_path_and_runs_nothing(
    client: TestClient, space: dict[str, Any], field: str, words: str
) -> None:
    error = error_of(client.post("/v1/sweeps", json=sweep(space=space)), 422)

    assert [d["field"] for d in error["details"]] == [field]
    assert words in error["details"][0]["message"]
    assert jobs_of(client) == []
    assert client.get("/v1/sweeps").json()["items"] == []


def test_a_grid_larger_than_max_trials_is_refused(client: TestClient) -> None:
    body = sweep(budget={"max_trials": 3})

    error = error_of(client.post("/v1/sweeps", json=body), 422)

    assert error["details"][0]["field"] == "budget.max_trials"
    assert "4 trials" in error["details"][0]["message"]


def test_an_invalid_base_is_a_422_naming_the_base_field(client: TestClient) -> None:
    base = small_job()
    base["optimizer"]["lr"] = -1
    error = error_of(client.post("/v1/sweeps", json=sweep(base=base)), 422)

    assert error["details"][0]["field"] == "base.optimizer.lr"


def test_a_base_naming_a_missing_dataset_is_a_422_at_base_dataset(client: TestClient) -> None:
    base = {**small_job(), "dataset": "ds_missing"}

    error = error_of(client.post("/v1/sweeps", json=sweep(base=base)), 422)

    assert error["details"][0]["field"] == "base.dataset"


def test_objective_needs_exactly_one_goal(client: TestClient) -> None:
    body = sweep(objective={"minimize": "time_to_target"})

    error = error_of(client.post("/v1/sweeps", json=body), 422)

    assert error["details"][0]["field"].startswith("objective")


def test_create_starts_at_most_max_parallel_trials_tagged_with_the_sweep(
    client: TestClient,
) -> None:
    created = client.post("/v1/sweeps", json=sweep(budget={"max_trials": 4, "max_parallel": 2}))

    assert created.status_code == 201, created.text
    body = created.json()
    assert [t["config"] for t in body["trials"]] == [
        {"optimizer.lr": 0.01, "training.batch_size": 16},
        {"optimizer.lr": 0.01, "training.batch_size": 64},
        {"optimizer.lr": 0.1, "training.batch_size": 16},
        {"optimizer.lr": 0.1, "training.batch_size": 64},
    ]
    assert [t["state"] for t in body["trials"]] == ["running", "running", "pending", "pending"]
    tagged = client.get("/v1/jobs", params={"tag": f"sweep:{body['id']}"}).json()["items"]
    assert len(tagged) == 2
    first = next(j for j in tagged if j["id"] == body["trials"][0]["job_id"])
    assert first["spec"]["optimizer"]["lr"] == 0.01
    assert first["spec"]["training"]["batch_size"] == 16
    assert first["spec"]["training"]["target"] == TARGET


def test_another_tenants_sweep_is_not_found(client: TestClient) -> None:
    created = client.post("/v1/sweeps", json=sweep()).json()
    other = bearer(new_key(client, "beta")["key"])

    assert client.get(f"/v1/sweeps/{created['id']}", headers=other).status_code == 404
    assert client.post(f"/v1/sweeps/{created['id']}/cancel", headers=other).status_code == 404
    assert client.get("/v1/sweeps", headers=other).json()["items"] == []
    assert [s["id"] for s in client.get("/v1/sweeps").json()["items"]] == [created["id"]]


def test_cancel_cancels_open_trials_and_starts_no_more(client: TestClient) -> None:
    created = client.post("/v1/sweeps", json=sweep(budget={"max_parallel": 2})).json()

    cancelled = client.post(f"/v1/sweeps/{created['id']}/cancel")

    assert cancelled.status_code == 202
    body = cancelled.json()
    assert body["status"] == "cancelled"
    assert {t["state"] for t in body["trials"]} == {"cancelled"}
    assert {j["status"] for j in jobs_of(client)} == {"cancelled"}
    assert len(jobs_of(client)) == 2
    again = client.post(f"/v1/sweeps/{created['id']}/cancel")
    assert error_of(again, 409)["code"] == "invalid_transition"


def test_unknown_sweep_is_a_404(client: TestClient) -> None:
    assert error_of(client.get("/v1/sweeps/sweep_missing"), 404)["code"] == "sweep_not_found"


def test_advise_runs_the_base_against_sampled_levers_by_halving_on_time_to_target(
    client: TestClient,
) -> None:
    base = small_job(epochs=27)

    created = client.post("/v1/advise", json={"base": base, "target": TARGET})

    assert created.status_code == 201, created.text
    body = created.json()
    assert body["trials"][0]["config"] == {}
    assert len(body["trials"]) == 13
    assert body["strategy"]["name"] == "halving"
    assert body["rungs"] == [3, 9, 27]
    assert body["objective"] == {"minimize": "time_to_target", "target": TARGET}
    paths = {path for t in body["trials"][1:] for path in t["config"]}
    assert paths == {"optimizer", "training.batch_size", "schedule", "training.precision"}
    assert len({str(t["config"]) for t in body["trials"]}) == 13
    again = client.post("/v1/advise", json={"base": base, "target": TARGET}).json()
    assert [t["config"] for t in again["trials"]] == [t["config"] for t in body["trials"]]


def test_advise_without_any_target_is_a_422_naming_target(client: TestClient) -> None:
    error = error_of(client.post("/v1/advise", json={"base": small_job()}), 422)

    assert error["details"][0]["field"] == "target"
    assert jobs_of(client) == []


def test_a_target_the_data_cannot_have_is_a_422_at_the_objective(client: TestClient) -> None:
    base = small_job()
    base["dataset"] = {
        "name": "synthetic",
        "task": "regression",
        "samples": 64,
        "input_shape": [16],
    }
    base["model"]["layers"][-1]["out_features"] = 1
    body = sweep(base=base, space={"optimizer.lr": [0.1]})

    error = error_of(client.post("/v1/sweeps", json=body), 422)

    assert error["details"][0]["field"] == "objective.target.metric"
    assert jobs_of(client) == []


def stream_close(client: TestClient, sweep_id: str, headers: dict[str, str]) -> int:
    with client.websocket_connect(f"/v1/sweeps/{sweep_id}/stream", headers=headers) as socket:
        try:
            socket.receive_json()
        except WebSocketDisconnect as closed:
            return closed.code
    raise AssertionError("the stream sent a message")


def test_another_tenants_sweep_stream_closes_like_a_missing_one(client: TestClient) -> None:
    created = client.post("/v1/sweeps", json=sweep()).json()
    other = bearer(new_key(client, "beta")["key"])

    assert stream_close(client, created["id"], other) == 4404
    assert stream_close(client, "sweep_missing", other) == 4404
    assert stream_close(client, created["id"], {"Authorization": ""}) == 4401


def test_the_stream_sends_the_sweep_and_closes_with_1000_once_it_has_ended(
    client: TestClient,
) -> None:
    created = client.post("/v1/sweeps", json=sweep()).json()
    client.post(f"/v1/sweeps/{created['id']}/cancel")

    with client.websocket_connect(f"/v1/sweeps/{created['id']}/stream") as socket:
        message = socket.receive_json()
        with pytest.raises(WebSocketDisconnect) as closed:
            socket.receive_json()

    assert message["type"] == "sweep"
    assert message["data"] == client.get(f"/v1/sweeps/{created['id']}").json()
    assert closed.value.code == 1000


def test_a_huge_grid_is_refused_by_counting_not_by_building_it(client: TestClient) -> None:
    values = list(range(1, 65))
    paths = ("training.batch_size", "training.seed", "training.epochs", "priority")
    body = sweep(space=dict.fromkeys(paths, values))

    error = error_of(client.post("/v1/sweeps", json=body), 422)

    assert error["details"][0]["field"] == "budget.max_trials"
    assert f"{64**4} trials" in error["details"][0]["message"]
