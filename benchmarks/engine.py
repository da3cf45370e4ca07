"""Engine throughput: a job run through the service against the hand-written loop.

Both train the same net on the same 8,000 samples with the same optimizer, batch size
and threads, each in a fresh process; runs alternate (reference, service, reference, ...)
and the figure is the median ratio of training samples/s (evaluation excluded; the
service's figure is its job's own `timings.samples_per_s`).
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from app.migrate import upgrade

ROOT = Path(__file__).resolve().parents[1]
MNIST = ROOT.parent / "shared" / "datasets" / "mnist"
RUNS = 5
TRAIN_SAMPLES = 8000
CASES = {
    # name: (reference net, service model, batch size, epochs per run)
    "mlp_b32": (
        "mlp",
        {
            "layers": [
                {"type": "flatten"},
                {"type": "linear", "out_features": 10, "activation": "relu"},
                {"type": "linear", "out_features": 10, "activation": "relu"},
                {"type": "linear", "out_features": 10},
            ]
        },
        32,
        5,
    ),
    "cnn_b128": ("cnn", {"preset": "cnn", "width": 16}, 128, 2),
}


def digits() -> tuple[np.ndarray, np.ndarray]:
    """8,000 MNIST digits when the shared copy is there, else synthetic ones of that shape."""
    if MNIST.is_dir():
        from app.datasets.idx import read_idx_dataset

        with (
            (MNIST / "t10k-images-idx3-ubyte.gz").open("rb") as images,
            (MNIST / "t10k-labels-idx1-ubyte.gz").open("rb") as labels,
        ):
            x, y = read_idx_dataset(images, labels, max_bytes=1 << 30)
        return x[:TRAIN_SAMPLES], y[:TRAIN_SAMPLES]
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (TRAIN_SAMPLES, 1, 28, 28), dtype=np.uint8), rng.integers(
        0, 10, TRAIN_SAMPLES
    )


def service_job(dataset_id: str, model: dict[str, Any], batch: int, epochs: int) -> dict[str, Any]:
    return {
        "dataset": dataset_id,
        "model": model,
        "optimizer": {"name": "sgd", "lr": 0.01, "momentum": 0.9},
        "training": {"epochs": epochs, "batch_size": batch, "val_fraction": 0.0},
        "checkpoint": {"every_epochs": 10_000, "keep": "last"},
    }


def run() -> dict[str, Any]:
    x, y = digits()
    results: dict[str, Any] = {}
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
            with TestClient(create_app(settings)) as client, data_file.open("rb") as file:
                dataset = client.post(
                    "/v1/datasets",
                    data={"format": "npz", "name": "digits"},
                    files={"file": ("digits.npz", file)},
                ).json()
                for name, (net, model, batch, epochs) in CASES.items():
                    reference, service = [], []
                    for _ in range(RUNS):
                        config = {
                            "data": str(data_file),
                            "net": net,
                            "batch_size": batch,
                            "epochs": epochs,
                        }
                        out = subprocess.run(
                            [sys.executable, "-m", "benchmarks.reference", json.dumps(config)],
                            cwd=ROOT,
                            capture_output=True,
                            text=True,
                            check=True,
                        )
                        reference.append(json.loads(out.stdout)["samples_per_s"])
                        job = client.post(
                            "/v1/jobs", json=service_job(dataset["id"], model, batch, epochs)
                        ).json()
                        with client.websocket_connect(f"/v1/jobs/{job['id']}/stream") as socket:
                            while True:
                                event = socket.receive_json()
                                if event["type"] == "status" and event["data"]["status"] in (
                                    "succeeded",
                                    "failed",
                                ):
                                    break
                        done = client.get(f"/v1/jobs/{job['id']}").json()
                        assert done["status"] == "succeeded", done["reason"]
                        service.append(done["timings"]["samples_per_s"])
                    ratios = [s / r for s, r in zip(service, reference, strict=True)]
                    results[name] = {
                        "reference_samples_per_s": statistics.median(reference),
                        "service_samples_per_s": statistics.median(service),
                        "ratio": statistics.median(ratios),
                    }
        finally:
            worker.terminate()
            worker.wait(30)
    return results
