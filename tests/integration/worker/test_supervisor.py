"""The worker re-checks, before reading them, that a job's dataset and warm-start
checkpoint still belong to the job's tenant: a job never trains on another's data."""

import io
import json
import struct
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from app.broker import Dispatcher
from app.config import Settings
from app.db import make_engine, make_session_factory
from app.events.notify import NoNotifier
from app.jobs import transitions
from app.orm import Checkpoint, Dataset
from app.storage import Storage
from tests.client import small_job
from worker.supervisor import Supervisor

pytestmark = pytest.mark.usefixtures("backend")


def dataset(client: TestClient) -> str:
    buffer = io.BytesIO()
    x = np.random.default_rng(0).standard_normal((64, 16)).astype(np.float32)
    np.savez(buffer, x=x, y=np.arange(64) % 4)
    files = {"file": ("d.npz", buffer.getvalue())}
    response = client.post("/v1/datasets", data={"format": "npz"}, files=files)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def checkpoint(client: TestClient) -> str:
    header = json.dumps({"0.bias": {"dtype": "F32", "shape": [32], "data_offsets": [0, 128]}})
    data = struct.pack("<Q", len(header)) + header.encode() + bytes(128)
    response = client.post("/v1/checkpoints", files={"file": ("w.safetensors", data)})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def supervised_after_handover(
    client: TestClient, settings: Settings, spec: dict[str, Any], table: Any, row_id: str
) -> str | None:
    """Submit `spec` as admin, hand the row `row_id` to another tenant, then supervise the
    job; the outcome's error."""
    job = client.post("/v1/jobs", json=spec).json()
    engine = make_engine(settings)
    sessions = make_session_factory(engine)
    with sessions() as session:
        session.execute(update(table).where(table.id == row_id).values(tenant="beta"))
        session.commit()
    with sessions() as session:
        claim = transitions.claim(
            session=session, notifier=NoNotifier(), job_id=job["id"], worker="w", lease_ttl_s=30
        )
    assert claim is not None
    supervisor = Supervisor(
        settings,
        sessions,
        NoNotifier(),
        Storage(settings.artifacts_dir),
        "w",
        Dispatcher(settings),
    )
    outcome = supervisor.supervise(claim)
    engine.dispose()
    return outcome.error


def test_a_job_does_not_read_a_dataset_that_is_no_longer_its_tenants(
    client: TestClient, settings: Settings
) -> None:
    data = dataset(client)

    error = supervised_after_handover(
        client, settings, {**small_job(), "dataset": data}, Dataset, data
    )

    assert error is not None and data in error


def test_a_job_does_not_warm_start_from_a_checkpoint_that_is_no_longer_its_tenants(
    client: TestClient, settings: Settings
) -> None:
    weights = checkpoint(client)
    spec = {**small_job(), "init": {"checkpoint": weights, "strict": False}}

    error = supervised_after_handover(client, settings, spec, Checkpoint, weights)

    assert error is not None and weights in error
