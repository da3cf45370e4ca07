"""Fault injection with real processes: workers killed, paused and terminated, trainers
killed in a loop, doorbells duplicated, Redis and Postgres restarted. No job is lost, none
runs twice: every epoch is reported exactly once and every job ends exactly once."""

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from fastapi.testclient import TestClient

from app.broker import Dispatcher
from app.config import Settings
from app.main import create_app
from app.migrate import upgrade
from tests.client import events_of, mlp_job
from tests.conftest import ADMIN_HEADERS, Workers
from tests.processes import PrivatePostgres, PrivateRedis, signal_tree, trainers

pytestmark = pytest.mark.usefixtures("backend")
# The heavier scenarios run on the full stack (Postgres and Redis), as in production.
FULL_STACK = pytest.mark.parametrize(
    "backend", [pytest.param("postgres", marks=pytest.mark.postgres)]
)
TERMINAL = ("succeeded", "failed", "cancelled")
# Short enough that a lost worker's job is reaped quickly, long enough for a loaded machine.
SHORT_LEASE_S = 2.0
# Liveness only: generous for a loaded two-core machine, never a measure of speed.
TIMEOUT_S = 240.0
SAMPLES = 2048
BATCH = 32
T = TypeVar("T")


def fault_job(epochs: int, samples: int = SAMPLES) -> dict[str, Any]:
    return mlp_job(epochs, samples, BATCH)


def steps_of(epochs: int, samples: int = SAMPLES) -> int:
    """Steps of an uninterrupted run (a fifth of the samples validate)."""
    return epochs * -(-int(samples * 0.8) // BATCH)


def wait_for(check: Callable[[], T | None], what: str, timeout_s: float = TIMEOUT_S) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.1)


def submit(client: TestClient, spec: dict[str, Any]) -> str:
    response = client.post("/v1/jobs", json=spec)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def job_of(client: TestClient, job_id: str) -> dict[str, Any] | None:
    """The job, or None while the API cannot answer (a database outage: 503)."""
    response = client.get(f"/v1/jobs/{job_id}")
    return response.json() if response.status_code == 200 else None


def finished(client: TestClient, job_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        job = job_of(client, job_id)
        return job if job is not None and job["status"] in TERMINAL else None

    return wait_for(done, f"job {job_id} to finish")


def reported_epochs(client: TestClient, job_id: str) -> list[int]:
    response = client.get(f"/v1/jobs/{job_id}/metrics")
    if response.status_code != 200:
        return []
    items = response.json()["items"]
    return [m["data"]["epoch"] for m in items if m["data"]["scope"] == "epoch"]


def reached(client: TestClient, job_id: str, epoch: int) -> Callable[[], bool]:
    return lambda: max(reported_epochs(client, job_id), default=0) >= epoch


def reasons(events: list[dict[str, Any]]) -> list[str]:
    return [e["data"]["reason"] for e in events if e["type"] == "status"]


def assert_ran_once(client: TestClient, job: dict[str, Any], epochs: int) -> list[dict[str, Any]]:
    """Every epoch reported once, one terminal event, one claim per attempt; the events."""
    events = events_of(client, job["id"])
    statuses = [e["data"]["status"] for e in events if e["type"] == "status"]
    assert [s for s in statuses if s in TERMINAL] == [job["status"]]
    assert statuses.count("running") == job["attempt"]
    assert reported_epochs(client, job["id"]) == list(range(1, epochs + 1))
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    return events


def resumed_after(events: list[dict[str, Any]]) -> list[int]:
    """The epochs each later attempt resumed after, from its log line."""
    lines = [e["data"]["message"] for e in events if e["type"] == "log"]
    return [int(m.split("epoch ")[1].split(" ")[0]) for m in lines if "resumed after" in m]


def holder(workers: Workers, job: dict[str, Any]) -> subprocess.Popen[bytes]:
    """The worker process holding a running job (worker ids end in the process id)."""
    pid = int(job["worker"].rsplit(":", 1)[1])
    return next(p for p in workers.processes if p.pid == pid)


def held_job(
    client: TestClient, workers: Workers, settings: Settings, epochs: int, at_epoch: int
) -> tuple[str, subprocess.Popen[bytes]]:
    """A job trained by one of two workers, once it reported `at_epoch`; and its worker."""
    workers.start(settings)
    workers.start(settings)
    job_id = submit(client, fault_job(epochs))
    wait_for(reached(client, job_id, at_epoch), f"epoch {at_epoch}")
    return job_id, holder(workers, job_of(client, job_id) or {})


def log_of(settings: Settings, workers: Workers, process: subprocess.Popen[bytes]) -> str:
    path: Path = settings.data_dir / f"worker-{workers.processes.index(process)}.log"
    return path.read_text(errors="replace")


@FULL_STACK
def test_a_job_whose_worker_is_killed_at_epoch_3_resumes_on_the_idle_worker(
    settings: Settings, client: TestClient, workers: Workers
) -> None:
    short = settings.model_copy(update={"lease_ttl_s": SHORT_LEASE_S})
    job_id, doomed = held_job(client, workers, short, epochs=30, at_epoch=3)

    signal_tree(doomed.pid, signal.SIGKILL)
    doomed.wait()
    done = finished(client, job_id)

    assert (done["status"], done["attempt"], done["restarts"]) == ("succeeded", 2, 1)
    events = assert_ran_once(client, done, 30)
    assert "worker_lost" in reasons(events)
    # Epoch 2's checkpoint was stored before epoch 3 was reported: no work from epoch 0.
    [after] = resumed_after(events)
    assert after >= 2
    assert done["result"]["steps"] == steps_of(30)


@FULL_STACK
def test_a_doorbell_delivered_again_and_again_runs_the_job_once(
    settings: Settings, client: TestClient, workers: Workers
) -> None:
    # Redis hands an unacknowledged doorbell to another worker after the visibility
    # timeout, while the first still trains: here after a second, many times over.
    redelivering = settings.model_copy(update={"broker_visibility_timeout_s": 1.0})
    first = workers.start(redelivering)
    second = workers.start(redelivering)
    job_id = submit(client, fault_job(15))
    wait_for(reached(client, job_id, 1), "the first epoch")
    dispatcher = Dispatcher(redelivering)
    dispatcher.send(job_id)
    dispatcher.send(job_id)

    done = finished(client, job_id)

    assert (done["status"], done["attempt"]) == ("succeeded", 1)
    assert_ran_once(client, done, 15)
    logs = log_of(settings, workers, first) + log_of(settings, workers, second)
    assert "is not queued" in logs  # the duplicates arrived, and their claims did nothing


@FULL_STACK
def test_jobs_survive_a_redis_restart_and_a_flushall(settings: Settings, tmp_path: Path) -> None:
    redis_server = PrivateRedis(tmp_path)
    redis_server.start()
    # Lost doorbells are rung again after two seconds.
    stack = settings.model_copy(update={"redis_url": redis_server.url, "reconcile_after_s": 2.0})
    try:
        with TestClient(create_app(stack), headers=ADMIN_HEADERS) as client:
            fleet = Workers(stack, client)
            try:
                fleet.start()
                fleet.start()
                job_ids = [submit(client, fault_job(8)) for _ in range(4)]
                wait_for(reached(client, job_ids[0], 1), "a running job")

                redis_server.restart()  # no persistence: the queued doorbells are gone
                wait_for(
                    lambda: any(
                        (job_of(client, j) or {}).get("status") in TERMINAL for j in job_ids
                    ),
                    "a job to finish after the restart",
                )
                redis_server.flushall()
                done = [finished(client, job_id) for job_id in job_ids]
            finally:
                fleet.stop_all()
            for job in done:
                assert job["status"] == "succeeded", job["reason"]
                assert_ran_once(client, job, 8)
    finally:
        redis_server.stop()


@FULL_STACK
def test_a_postgres_restart_mid_job_is_503_meanwhile_and_loses_nothing(
    settings: Settings,
) -> None:
    database = PrivatePostgres()
    try:
        database.init()
        database.start()
        # Longer than the outage: the worker keeps its claim and retries its writes.
        stack = settings.model_copy(update={"database_url": database.url, "lease_ttl_s": 20.0})
        upgrade(stack)
        with TestClient(create_app(stack), headers=ADMIN_HEADERS) as client:
            fleet = Workers(stack, client)
            try:
                fleet.start()
                job_id = submit(client, fault_job(20))
                wait_for(reached(client, job_id, 2), "epoch 2")

                database.stop()
                outage = client.get(f"/v1/jobs/{job_id}")
                assert outage.status_code == 503
                assert outage.json()["error"]["code"] == "unavailable"
                time.sleep(3)
                database.start()
                done = finished(client, job_id)
            finally:
                fleet.stop_all()
            assert (done["status"], done["attempt"]) == ("succeeded", 1)
            assert_ran_once(client, done, 20)
            assert done["result"]["steps"] == steps_of(20)
    finally:
        database.remove()


@FULL_STACK
def test_a_paused_worker_that_wakes_after_losing_its_lease_writes_nothing(
    settings: Settings, client: TestClient, workers: Workers
) -> None:
    short = settings.model_copy(update={"lease_ttl_s": SHORT_LEASE_S})
    job_id, zombie = held_job(client, workers, short, epochs=30, at_epoch=2)

    signal_tree(zombie.pid, signal.SIGSTOP)
    try:
        resumed = wait_for(
            lambda: (j := job_of(client, job_id)) is not None and j["attempt"] == 2,
            "the job to resume elsewhere",
        )
        assert resumed
        paused_at = max(reported_epochs(client, job_id))
        wait_for(reached(client, job_id, paused_at + 1), "the new holder to train")
    finally:
        signal_tree(zombie.pid, signal.SIGCONT)

    done = finished(client, job_id)

    assert (done["status"], done["attempt"]) == ("succeeded", 2)
    assert_ran_once(client, done, 30)
    refused = ("its writes here are refused", "lost the claim", "ran out")
    wait_for(
        lambda: any(r in log_of(settings, workers, zombie) for r in refused),
        "the zombie to notice it lost the job",
    )


@FULL_STACK
def test_a_job_whose_trainer_keeps_dying_fails_after_max_restarts(
    settings: Settings, client: TestClient, workers: Workers
) -> None:
    crashing = settings.model_copy(update={"max_restarts": 2})
    worker = workers.start(crashing)
    job_id = submit(client, fault_job(50))
    killed: set[int] = set()

    def kill_trainers() -> dict[str, Any] | None:
        for pid in trainers(worker.pid):
            if pid not in killed:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
        job = job_of(client, job_id)
        return job if job is not None and job["status"] in TERMINAL else None

    done = wait_for(kill_trainers, "the crash loop to stop")

    assert (done["status"], done["reason"]) == ("failed", "max_restarts")
    assert (done["attempt"], done["restarts"]) == (3, 2)
    assert reasons(events_of(client, job_id)).count("trainer_lost") == 2


@FULL_STACK
def test_a_worker_stopped_by_sigterm_checkpoints_its_job_and_hands_it_back(
    settings: Settings, client: TestClient, workers: Workers
) -> None:
    # The default lease (30 s) outlasts the test: the job comes back by hand-back alone.
    job_id, stopping = held_job(client, workers, settings, epochs=30, at_epoch=2)

    stopping.terminate()
    stopping.wait(timeout=settings.stop_grace_s + 30)  # bounded: checkpoint, then exit
    done = finished(client, job_id)

    assert (done["status"], done["attempt"], done["restarts"]) == ("succeeded", 2, 0)
    events = assert_ran_once(client, done, 30)
    assert "worker_stopping" in reasons(events)
    stops = [e["data"] for e in events if e["type"] == "checkpoint" and e["data"]["kind"] == "stop"]
    assert len(stops) == 1
    assert resumed_after(events) == [stops[0]["epoch"]]
    assert done["result"]["steps"] == steps_of(30)


def test_cancelling_a_running_job_checkpoints_it_first(
    client: TestClient, worker: subprocess.Popen[bytes]
) -> None:
    job_id = submit(client, fault_job(30))
    wait_for(reached(client, job_id, 1), "epoch 1")

    assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 202
    done = finished(client, job_id)

    assert (done["status"], done["reason"]) == ("cancelled", "cancelled")
    saved = [e["data"] for e in events_of(client, job_id) if e["type"] == "checkpoint"]
    assert saved[-1]["kind"] == "stop"
    kinds = [c["kind"] for c in client.get(f"/v1/jobs/{job_id}/checkpoints").json()["items"]]
    assert "stop" in kinds
