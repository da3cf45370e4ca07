"""Multi-worker DDP jobs: two real `python -m worker` processes form a gang over loopback
and train one job; a gang that cannot form releases its slots and re-queues the job."""

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.config import Settings
from app.db import make_engine, make_session_factory
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


def test_a_gang_that_does_not_form_in_time_releases_its_slots_and_requeues_the_job(
    client: TestClient, settings: Settings, workers: Workers, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAAS_GANG_TIMEOUT_S", "1")
    workers.start()  # alone: nobody answers its ring
    job = client.post("/v1/jobs", json={**small_job(epochs=3), "distributed": GANG}).json()

    seen, _ = read_stream(client, job["id"], limit=3)

    assert statuses(seen) == ["queued", "running", "queued"]
    assert seen[-1]["data"]["reason"] == "gang_incomplete"
    assert client.post(f"/v1/jobs/{job['id']}/cancel").status_code == 202
    rest, code = read_stream(client, job["id"], after=seen[-1]["seq"])
    assert code == 1000
    assert statuses(rest)[-1] == "cancelled"
