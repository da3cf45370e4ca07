"""Multi-worker DDP jobs: two real `python -m worker` processes form a gang over loopback
and train one job; a gang that cannot form releases its slots and re-queues the job."""

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.config import Settings
from app.db import make_engine, make_session_factory
from app.gangs.service import GANG_TRIES, UNSCHEDULABLE
from app.orm import GangSlot
from tests.client import read_stream, small_job, statuses
from tests.conftest import Workers

GANG = {"strategy": "ddp", "nodes": 2, "processes": 1}


def slots(settings: Settings, job_id: str) -> list[GangSlot]:
    engine = make_engine(settings)
    with make_session_factory(engine)() as session:
        found = list(session.scalars(select(GangSlot).where(GangSlot.job_id == job_id)))
    engine.dispose()
    return found


def metrics(events: list[dict[str, Any]], scope: str) -> list[dict[str, Any]]:
    return [e["data"] for e in events if e["type"] == "metric" and e["data"]["scope"] == scope]


@pytest.mark.usefixtures("backend")
def test_two_workers_form_a_gang_and_train_one_job(
    client: TestClient, settings: Settings, workers: Workers
) -> None:
    workers.start()
    workers.start()
    job = client.post("/v1/jobs", json={**small_job(epochs=3), "distributed": GANG}).json()

    events, code = read_stream(client, job["id"])

    assert code == 1000
    done = client.get(f"/v1/jobs/{job['id']}").json()
    assert done["status"] == "succeeded", done["reason"]
    assert done["result"]["world_size"] == 2
    assert [m["epoch"] for m in metrics(events, "epoch")] == [1, 2, 3]
    assert done["result"]["steps"] == 3 * 13  # the global batch of 32 over 410 samples
    gang = slots(settings, job["id"])
    assert [slot.node for slot in gang] == [0, 1]
    assert len({slot.worker for slot in gang}) == 2  # two different workers


def test_a_gang_larger_than_the_fleet_is_refused_at_submit_naming_the_count(
    client: TestClient, workers: Workers
) -> None:
    workers.start()

    response = client.post("/v1/jobs", json={**small_job(epochs=3), "distributed": GANG})

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_spec"
    assert error["details"][0]["field"] == "distributed.nodes"
    assert "needs 2 workers at once, but the fleet has registered 1" in error["message"]
    assert client.get("/v1/jobs").json()["items"] == []


def test_a_gang_that_no_longer_forms_fails_unschedulable_after_a_few_tries(
    client: TestClient, settings: Settings, workers: Workers
) -> None:
    quick = settings.model_copy(update={"gang_timeout_s": 1.0})
    workers.start(quick)
    workers.start(quick)
    workers.processes[1].terminate()  # the fleet shrinks: one worker left for a 2-node job
    workers.processes[1].wait(30)
    job = client.post("/v1/jobs", json={**small_job(epochs=3), "distributed": GANG}).json()

    seen, code = read_stream(client, job["id"])

    assert code == 1000
    tries = ["running", "queued"] * (GANG_TRIES - 1)
    assert statuses(seen) == ["queued", *tries, "running", "failed"]
    assert [e["data"]["reason"] for e in seen if e["type"] == "status"][-1] == UNSCHEDULABLE
    assert slots(settings, job["id"]) == []
