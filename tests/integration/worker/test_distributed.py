"""Data-parallel jobs with a real worker: DDP ranks on CPU (gloo) train MNIST as well as
one process does, report one set of metrics, share checkpoints with plain jobs, and end
together when one of them dies or the job is cancelled."""

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.client import read_stream, small_job, statuses, upload_mnist

# Far below the ranks' collective timeout (60 s): a dead rank must not wait for it.
PROMPT_END_S = 30.0
DDP = {"strategy": "ddp", "processes": 2}


@pytest.fixture
def mnist(client: TestClient) -> str:
    return str(upload_mnist(client)["id"])


def run(client: TestClient, spec: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    response = client.post("/v1/jobs", json=spec)
    assert response.status_code == 201, response.text
    events, code = read_stream(client, response.json()["id"])
    assert code == 1000
    job: dict[str, Any] = client.get(f"/v1/jobs/{response.json()['id']}").json()
    assert job["status"] == "succeeded", job["reason"]
    return job, events


def metrics(events: list[dict[str, Any]], scope: str) -> list[dict[str, Any]]:
    return [e["data"] for e in events if e["type"] == "metric" and e["data"]["scope"] == scope]


def rank_pids(events: list[dict[str, Any]]) -> list[int]:
    started = [e["data"] for e in events if e["type"] == "log" and "pids" in e["data"]]
    assert len(started) == 1
    pids: list[int] = started[0]["pids"]
    return pids


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def wait_until_ended(client: TestClient, job_id: str, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.2)
    pytest.fail(f"job {job_id} still running {timeout_s} s later")


@pytest.mark.usefixtures("backend")
def test_two_process_job_reaches_the_single_process_accuracy_with_one_set_of_metrics(
    client: TestClient, mnist: str, worker: subprocess.Popen[bytes]
) -> None:
    spec = {
        "dataset": mnist,
        "model": {"preset": "mlp"},
        "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
        "training": {"epochs": 3, "batch_size": 64},
    }
    single, _ = run(client, spec)

    ddp, events = run(client, {**spec, "distributed": DDP})

    assert ddp["result"]["world_size"] == 2
    assert single["result"]["world_size"] == 1
    accuracy = ddp["result"]["final"]["val_accuracy"]
    assert accuracy > 0.9
    assert abs(accuracy - single["result"]["final"]["val_accuracy"]) <= 0.02
    # One set of metrics: each epoch once, steps of the whole job (8000 samples / 64).
    assert [m["epoch"] for m in metrics(events, "epoch")] == [1, 2, 3]
    steps = [m["step"] for m in metrics(events, "step")]
    assert steps == sorted(set(steps))
    assert ddp["result"]["steps"] == single["result"]["steps"] == 3 * 125
    assert len([e for e in events if e["type"] == "result"]) == 1
    assert len(rank_pids(events)) == 2


def test_a_ddp_checkpoint_resumes_as_a_single_process_job(
    client: TestClient, worker: subprocess.Popen[bytes]
) -> None:
    first, _ = run(client, {**small_job(epochs=2), "distributed": DDP})
    final = client.get(f"/v1/jobs/{first['id']}/checkpoints").json()["items"][-1]
    assert final["kind"] == "final"

    resumed = {**small_job(epochs=4), "init": {"checkpoint": final["id"], "resume": True}}

    second, events = run(client, resumed)

    assert [m["epoch"] for m in metrics(events, "epoch")] == [3, 4]
    assert second["result"]["world_size"] == 1
    assert (
        second["result"]["final"]["val_accuracy"] >= first["result"]["final"]["val_accuracy"] - 0.05
    )


def test_killing_one_rank_fails_the_job_promptly_with_that_ranks_end(
    client: TestClient, worker: subprocess.Popen[bytes]
) -> None:
    job = client.post("/v1/jobs", json={**small_job(epochs=10_000), "distributed": DDP}).json()
    seen, _ = read_stream(client, job["id"], limit=6)
    pids = rank_pids(seen)

    os.kill(pids[1], signal.SIGKILL)

    done = wait_until_ended(client, job["id"], PROMPT_END_S)
    assert done["status"] == "failed"
    assert "rank 1" in done["reason"] and "SIGKILL" in done["reason"], done["reason"]
    assert not any(running(pid) for pid in pids)


def test_cancel_stops_every_rank(client: TestClient, worker: subprocess.Popen[bytes]) -> None:
    job = client.post("/v1/jobs", json={**small_job(epochs=10_000), "distributed": DDP}).json()
    seen, _ = read_stream(client, job["id"], limit=6)
    pids = rank_pids(seen)
    assert all(running(pid) for pid in pids)

    assert client.post(f"/v1/jobs/{job['id']}/cancel").status_code == 202

    rest, code = read_stream(client, job["id"], after=seen[-1]["seq"])
    assert code == 1000
    assert statuses(rest)[-1] == "cancelled"
    deadline = time.monotonic() + PROMPT_END_S
    while any(running(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(running(pid) for pid in pids)
