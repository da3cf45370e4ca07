"""A running service for benchmarks: embedded settings in a temporary directory, one real
worker process, an in-process API client, and the 8,000 MNIST digits uploaded."""

import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient

from app.config import Settings
from app.keys.service import server_secrets
from app.main import create_app
from app.migrate import upgrade


def admin_client(settings: Settings) -> TestClient:
    """An in-process client of the API that acts as the tenant `admin`."""
    token = server_secrets(settings).admin_token
    return TestClient(create_app(settings), headers={"Authorization": f"Bearer {token}"})


ROOT = Path(__file__).resolve().parents[1]
MNIST = ROOT.parent / "shared" / "datasets" / "mnist"
TRAIN_SAMPLES = 8000
TERMINAL = ("succeeded", "failed", "cancelled")
STATUS_POLL_S = 0.5


def digits(samples: int = TRAIN_SAMPLES) -> tuple[np.ndarray, np.ndarray]:
    """MNIST digits when the shared copy is there, else random ones of the same shape."""
    if MNIST.is_dir():
        from app.datasets.idx import read_idx_dataset

        with (
            (MNIST / "t10k-images-idx3-ubyte.gz").open("rb") as images,
            (MNIST / "t10k-labels-idx1-ubyte.gz").open("rb") as labels,
        ):
            x, y = read_idx_dataset(images, labels, max_bytes=1 << 30)
        return x[:samples], y[:samples]
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (samples, 1, 28, 28), dtype=np.uint8), rng.integers(0, 10, samples)


@dataclass
class Service:
    client: TestClient
    dataset_id: str
    data_file: Path

    def run(self, spec: dict[str, Any], subscribers: int = 1) -> dict[str, Any]:
        """Submit a job and wait until it ends, followed by `subscribers` event streams (with
        none, by polling its status twice a second); the finished job."""
        job = self.client.post("/v1/jobs", json=spec).json()
        if subscribers:
            streams = [
                threading.Thread(target=self.follow, args=(job["id"],)) for _ in range(subscribers)
            ]
            for stream in streams:
                stream.start()
            for stream in streams:
                stream.join()
        while (done := self.client.get(f"/v1/jobs/{job['id']}").json())["status"] not in TERMINAL:
            time.sleep(STATUS_POLL_S)
        assert done["status"] == "succeeded", done["reason"]
        return dict(done)

    def follow(self, job_id: str) -> None:
        with self.client.websocket_connect(f"/v1/jobs/{job_id}/stream") as socket:
            while True:
                event = socket.receive_json()
                if event["type"] == "status" and event["data"]["status"] in TERMINAL:
                    return


@contextlib.contextmanager
def running(samples: int = TRAIN_SAMPLES) -> Iterator[Service]:
    x, y = digits(samples)
    with tempfile.TemporaryDirectory() as tmp:
        data_file = Path(tmp) / "digits.npz"
        np.savez(data_file, x=x, y=y)
        settings = Settings(data_dir=Path(tmp) / "taas", task_queue=f"bench.{uuid.uuid4().hex[:8]}")
        upgrade(settings)
        env = {
            **os.environ,
            "TAAS_DATA_DIR": str(settings.data_dir),
            "TAAS_TASK_QUEUE": settings.task_queue,
        }
        worker = subprocess.Popen(
            [sys.executable, "-m", "worker", "--loglevel=WARNING"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            with admin_client(settings) as client, data_file.open("rb") as file:
                dataset = client.post(
                    "/v1/datasets",
                    data={"format": "npz", "name": "digits"},
                    files={"file": ("digits.npz", file)},
                ).json()
                yield Service(client, dataset["id"], data_file)
        finally:
            worker.terminate()
            worker.wait(30)
