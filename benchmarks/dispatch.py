"""Dispatch latency: submit to `running` with an idle worker, beside a raw broker round trip.

Latency is read from the stored record: the `running` status event's time (written by
the worker at its claim) minus the job's `created_at` (written by the API at submit),
so polling by this script adds nothing to it. Both stacks are measured in one run:
embedded (SQLite + the SQLAlchemy broker) and full (Postgres + Redis).
"""

import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.config import Settings
from app.migrate import upgrade
from benchmarks.service import admin_client

ROOT = Path(__file__).resolve().parents[1]
POSTGRES_URL = os.environ.get(
    "TAAS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("TAAS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SAMPLES = 20
TINY_JOB: dict[str, Any] = {
    "dataset": {"name": "synthetic", "samples": 64, "classes": 2, "input_shape": [4]},
    "model": {"layers": [{"type": "linear", "out_features": 2}]},
    "optimizer": {"name": "sgd", "lr": 0.1},
    "training": {"epochs": 1, "batch_size": 32},
}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(settings: Settings) -> list[float]:
    env = dict(os.environ)
    env.update(
        {
            "TAAS_DATA_DIR": str(settings.data_dir),
            "TAAS_DATABASE_URL": settings.sqlalchemy_url,
            "TAAS_TASK_QUEUE": settings.task_queue,
        }
    )
    env.pop("TAAS_REDIS_URL", None)
    if settings.redis_url:
        env["TAAS_REDIS_URL"] = settings.redis_url
    worker = subprocess.Popen(
        [sys.executable, "-m", "worker", "--loglevel=WARNING"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    latencies = []
    try:
        with admin_client(settings) as client:
            for i in range(SAMPLES + 1):
                job = client.post("/v1/jobs", json=TINY_JOB).json()
                with client.websocket_connect(f"/v1/jobs/{job['id']}/stream") as socket:
                    events = []
                    while not events or events[-1]["data"].get("status") not in (
                        "succeeded",
                        "failed",
                    ):
                        event = socket.receive_json()
                        if event["type"] == "status":
                            events.append(event)
                running = next(e for e in events if e["data"]["status"] == "running")
                latency = (
                    datetime.fromisoformat(running["time"])
                    - datetime.fromisoformat(job["created_at"])
                ).total_seconds()
                if i > 0:  # the first job also waits for the worker to finish starting
                    latencies.append(latency)
    finally:
        worker.terminate()
        worker.wait(30)
    return latencies


@contextlib.contextmanager
def postgres_database(prefix: str) -> Iterator[str]:
    """A fresh database in the test cluster for one benchmark, dropped after: its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(make_url(POSTGRES_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def redis_round_trip_s() -> float:
    client = redis.Redis.from_url(REDIS_URL)
    samples = []
    for _ in range(200):
        started = time.perf_counter()
        client.ping()
        samples.append(time.perf_counter() - started)
    client.close()
    return statistics.median(samples)


def run() -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        embedded = Settings(data_dir=Path(tmp), task_queue=f"bench.{uuid.uuid4().hex[:8]}")
        upgrade(embedded)
        lat = measure(embedded)
        results["embedded_p50_s"], results["embedded_p99_s"] = (
            percentile(lat, 0.5),
            percentile(lat, 0.99),
        )
    with postgres_database("taas_bench") as url, tempfile.TemporaryDirectory() as tmp:
        full = Settings(
            data_dir=Path(tmp),
            database_url=url,
            redis_url=REDIS_URL,
            task_queue=f"bench.{uuid.uuid4().hex[:8]}",
        )
        upgrade(full)
        lat = measure(full)
        results["full_p50_s"], results["full_p99_s"] = (
            percentile(lat, 0.5),
            percentile(lat, 0.99),
        )
    results["redis_round_trip_s"] = redis_round_trip_s()
    results["samples"] = SAMPLES
    return results
