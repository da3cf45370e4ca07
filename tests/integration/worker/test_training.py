"""A real worker trains real jobs: on SQLite with the SQLAlchemy broker, and on Postgres
with the Redis broker and Redis pub/sub (the `backend` fixture runs each test on both)."""

import subprocess
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.broker import Dispatcher
from app.config import Settings
from tests.client import read_stream, small_job, statuses

pytestmark = pytest.mark.usefixtures("backend")

TIMING_KEYS = {
    "queued_s",
    "startup_s",
    "train_s",
    "eval_s",
    "checkpoint_s",
    "compile_s",
    "probe_s",
    "total_s",
    "samples_per_s",
    "epoch_s",
    "time_to_target_s",
    "flops_per_s",
}


def submit(client: TestClient, spec: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/jobs", json=spec)
    assert response.status_code == 201, response.text
    job: dict[str, Any] = response.json()
    assert job["status"] == "queued"
    return job


def test_job_trains_and_streams_every_event_once_in_order(
    client: TestClient, worker: subprocess.Popen[bytes]
) -> None:
    job = submit(client, small_job(epochs=3))

    events, code = read_stream(client, job["id"])

    assert code == 1000
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert statuses(events) == ["queued", "running", "succeeded"]
    epochs = [e["data"] for e in events if e["type"] == "metric" and e["data"]["scope"] == "epoch"]
    assert [m["epoch"] for m in epochs] == [1, 2, 3]
    for metric in ("train_loss", "val_loss", "val_accuracy", "lr", "samples_per_s"):
        assert all(isinstance(m[metric], float) for m in epochs), metric
    assert [e["type"] for e in events[-2:]] == ["result", "status"]

    done = client.get(f"/v1/jobs/{job['id']}").json()
    assert done["status"] == "succeeded"
    assert done["reason"] == "completed"
    assert done["attempt"] == 1
    assert set(done["timings"]) == TIMING_KEYS
    assert len(done["timings"]["epoch_s"]) == 3
    assert done["result"]["epochs"] == 3
    assert done["result"]["steps"] == 3 * 13  # 410 training samples in batches of 32
    assert set(done["result"]["final"]) >= {"train_loss", "val_loss", "val_accuracy"}
    metrics = client.get(f"/v1/jobs/{job['id']}/metrics").json()["items"]
    assert [m["data"] for m in metrics if m["data"]["scope"] == "epoch"] == epochs


def test_reconnect_with_after_replays_exactly_the_rest(
    client: TestClient, worker: subprocess.Popen[bytes]
) -> None:
    job = submit(client, small_job(epochs=2))
    first, code = read_stream(client, job["id"], limit=2)
    assert code is None

    rest, code = read_stream(client, job["id"], after=first[-1]["seq"])

    assert code == 1000
    everything = client.get(f"/v1/jobs/{job['id']}/events").json()["items"]
    assert first + rest == everything


def test_target_stops_the_job_and_records_time_to_target(
    client: TestClient, worker: subprocess.Popen[bytes]
) -> None:
    spec = small_job(epochs=50, target={"metric": "val_accuracy", "value": 0.5})
    job = submit(client, spec)

    events, _ = read_stream(client, job["id"])

    done = client.get(f"/v1/jobs/{job['id']}").json()
    assert done["reason"] == "target_reached"
    assert done["result"]["epochs"] < 50
    assert done["result"]["final"]["val_accuracy"] >= 0.5
    assert done["timings"]["time_to_target_s"] is not None
    assert statuses(events)[-1] == "succeeded"


def test_cancel_stops_a_running_job(client: TestClient, worker: subprocess.Popen[bytes]) -> None:
    spec = small_job(epochs=10_000)
    job = submit(client, spec)
    # Wait until it is training: its first metric has been stored.
    seen, _ = read_stream(client, job["id"], limit=4)
    assert statuses(seen) == ["queued", "running"]

    response = client.post(f"/v1/jobs/{job['id']}/cancel")

    assert response.status_code == 202
    assert response.json()["cancel_requested"] is True
    rest, code = read_stream(client, job["id"], after=seen[-1]["seq"])
    assert code == 1000
    assert statuses(rest)[-1] == "cancelled"
    done = client.get(f"/v1/jobs/{job['id']}").json()
    assert (done["status"], done["reason"]) == ("cancelled", "cancelled")
    assert done["result"] is None
    assert client.post(f"/v1/jobs/{job['id']}/cancel").status_code == 409


def test_a_diverging_job_fails_with_its_reason(
    client: TestClient, worker: subprocess.Popen[bytes]
) -> None:
    spec = small_job(epochs=5, normalize="none")
    spec["optimizer"] = {"name": "sgd", "lr": 100.0, "momentum": 0.99}
    spec["dataset"]["samples"] = 256
    job = submit(client, spec)

    events, code = read_stream(client, job["id"])

    assert code == 1000
    done = client.get(f"/v1/jobs/{job['id']}").json()
    # The job's own fault: it fails at once, with no second attempt.
    assert (done["status"], done["reason"]) == ("failed", "diverged")
    assert (done["attempt"], done["restarts"]) == (1, 0)
    assert statuses(events).count("running") == 1
    errors = [e for e in events if e["type"] == "log" and e["data"]["level"] == "error"]
    assert any("Diverged" in e["data"]["message"] for e in errors)


def test_redelivered_doorbell_does_not_run_a_job_twice(
    client: TestClient, settings: Settings, worker: subprocess.Popen[bytes]
) -> None:
    job = submit(client, small_job(epochs=1))
    read_stream(client, job["id"])
    before = client.get(f"/v1/jobs/{job['id']}/events").json()["items"]

    Dispatcher(settings).send(job["id"])
    Dispatcher(settings).send(job["id"])
    # The single worker takes doorbells in order: once this job ends, the two
    # duplicates before it have been handled.
    marker = submit(client, small_job(epochs=1))
    read_stream(client, marker["id"])

    after = client.get(f"/v1/jobs/{job['id']}/events").json()["items"]
    assert after == before
    assert client.get(f"/v1/jobs/{job['id']}").json()["attempt"] == 1


def test_cancel_of_a_queued_job_needs_no_worker(client: TestClient) -> None:
    job = submit(client, small_job())

    response = client.post(f"/v1/jobs/{job['id']}/cancel")

    assert response.status_code == 202
    assert response.json()["status"] == "cancelled"
    events, code = read_stream(client, job["id"])
    assert code == 1000
    assert statuses(events) == ["queued", "cancelled"]


def test_a_regression_job_learns_its_targets(
    client: TestClient, worker: subprocess.Popen[bytes]
) -> None:
    spec = small_job(epochs=8)
    spec["dataset"] = {
        "name": "synthetic",
        "task": "regression",
        "targets": 2,
        "samples": 512,
        "input_shape": [8],
    }
    spec["model"]["layers"][-1]["out_features"] = 2
    spec["optimizer"] = {"name": "adam", "lr": 0.01}
    job = submit(client, spec)

    events, code = read_stream(client, job["id"])

    assert code == 1000
    done = client.get(f"/v1/jobs/{job['id']}").json()
    assert done["status"] == "succeeded", done["reason"]
    epochs = [e["data"] for e in events if e["type"] == "metric" and e["data"]["scope"] == "epoch"]
    assert all("val_accuracy" not in m for m in epochs)
    assert epochs[-1]["val_mae"] < epochs[0]["val_mae"]
    assert done["result"]["best"]["val_loss"] == min(m["val_loss"] for m in epochs)
    assert done["timings"]["flops_per_s"] > 0


def test_auto_levers_are_resolved_on_the_worker_and_reported(
    client: TestClient, worker: subprocess.Popen[bytes]
) -> None:
    spec = small_job(epochs=2)
    spec["training"].update({"batch_size": "auto", "precision": "auto", "compile": "auto"})
    spec["resources"] = {"threads": 1}
    job = submit(client, spec)

    events, _ = read_stream(client, job["id"])

    done = client.get(f"/v1/jobs/{job['id']}").json()
    assert done["status"] == "succeeded", done
    settings = done["result"]["settings"]
    assert settings["threads"] == 1
    assert settings["compile"] is False  # auto never compiles on a CPU
    assert settings["precision"] in ("fp32", "bf16")
    probe_logs = [e["data"] for e in events if "batch_size" in e["data"] and e["type"] == "log"]
    assert len(probe_logs) == 1
    assert str(settings["batch_size"]) in probe_logs[0]["batch_size"]
    assert done["timings"]["probe_s"] > 0


def test_a_job_past_its_runtime_cap_stops_with_reason_timeout_and_keeps_its_checkpoints(
    client: TestClient, settings: Settings, workers: Any
) -> None:
    workers.start(settings.model_copy(update={"max_runtime_s": 2.0}))
    job = submit(client, small_job(epochs=10_000))

    events, code = read_stream(client, job["id"])

    assert code == 1000
    assert statuses(events)[-1] == "failed"
    done = client.get(f"/v1/jobs/{job['id']}").json()
    assert (done["status"], done["reason"]) == ("failed", "timeout")
    assert 0 < done["timings"]["total_s"] < 60
    # It checkpointed where the limit stopped it, and what it trained is kept: the job
    # can go on with POST /v1/jobs/{id}/resume.
    saved = client.get(f"/v1/jobs/{job['id']}/checkpoints").json()["items"]
    assert {c["kind"] for c in saved} <= {"epoch", "stop"}
    assert "stop" in {c["kind"] for c in saved}


def test_a_minimal_job_trains_with_the_documented_defaults(
    client: TestClient, worker: subprocess.Popen[bytes]
) -> None:
    minimal = {
        "dataset": {"name": "synthetic", "samples": 256, "input_shape": [8], "classes": 2},
        "model": {"preset": "mlp", "width": 8, "depth": 1},
        "optimizer": {"name": "adam", "lr": 0.01},
    }
    job = submit(client, minimal)

    events, code = read_stream(client, job["id"])

    assert code == 1000 and statuses(events)[-1] == "succeeded"
    done = client.get(f"/v1/jobs/{job['id']}").json()
    training = done["spec"]["training"]
    assert (training["epochs"], training["batch_size"], training["val_fraction"]) == (10, 32, 0.2)
    assert done["result"]["epochs"] == 10
    assert done["result"]["settings"]["batch_size"] == 32
    assert done["result"]["steps"] == 10 * 7  # 205 training samples in batches of 32
