"""A new user's path: `taas up`, upload MNIST, train the seed job, watch it stream."""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from app.keys.service import admin_token_path
from app.spec.schemas import SEED_JOB_EXAMPLE
from tests.conftest import MNIST, ROOT, free_port, wait_for_http

TAAS = [sys.executable, "-m", "app.cli"]
AUTH: dict[str, str] = {}
pytestmark = pytest.mark.skipif(not MNIST.is_dir(), reason="needs ../shared/datasets/mnist")


@pytest.fixture
def service(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAAS_")}
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    with (tmp_path / "up.log").open("wb") as log:
        process = subprocess.Popen(
            [*TAAS, "up", "--port", str(port), "--data-dir", str(tmp_path / "data")],
            cwd=workdir,  # everything must land under --data-dir, not the working directory
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env | {"PYTHONPATH": str(ROOT)},
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_for_http(f"{url}/readyz", process)
            # `taas up` made an admin token and printed it once; the `taas` command finds
            # it in the data dir, and these tests send it themselves.
            token = admin_token_path(tmp_path / "data").read_text().strip()
            assert token in (tmp_path / "up.log").read_text()
            AUTH["Authorization"] = f"Bearer {token}"
            yield url
            process.terminate()
            assert process.wait(30) == 0
        finally:
            process.kill()
            process.wait()
    assert list(workdir.iterdir()) == []


def stream(url: str, job_id: str, after: int) -> list[dict[str, Any]]:
    ws = url.replace("http", "ws", 1)
    with connect(f"{ws}/v1/jobs/{job_id}/stream?after={after}", additional_headers=AUTH) as socket:
        events = [json.loads(raw) for raw in socket]
        assert socket.close_code == 1000
    return events


def cli_env() -> dict[str, str]:
    """The `taas` command of a user elsewhere: it is handed the admin token."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAAS_")}
    return env | {"TAAS_TOKEN": AUTH["Authorization"].removeprefix("Bearer ")}


def upload_mnist(service: str) -> dict[str, Any]:
    images, labels = MNIST / "t10k-images-idx3-ubyte.gz", MNIST / "t10k-labels-idx1-ubyte.gz"
    upload = subprocess.run(
        [
            *TAAS,
            "datasets",
            "upload",
            "--images",
            str(images),
            "--labels",
            str(labels),
            "--name",
            "mnist",
            "--url",
            service,
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env=cli_env(),
    )
    dataset: dict[str, Any] = json.loads(upload.stdout)
    assert (dataset["samples"], dataset["input_shape"], dataset["classes"]) == (
        10_000,
        [1, 28, 28],
        10,
    )
    return dataset


def test_seed_job_trains_on_mnist_and_streams(service: str, tmp_path: Path) -> None:
    dataset = upload_mnist(service)
    spec_path = tmp_path / "seed.json"
    spec_path.write_text(json.dumps(SEED_JOB_EXAMPLE))

    run = subprocess.run(
        [*TAAS, "submit", str(spec_path), "--dataset", dataset["id"], "--follow", "--url", service],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=cli_env(),
    )

    assert run.returncode == 0, run.stdout + run.stderr
    assert "succeeded" in run.stdout
    job_id = run.stdout.split()[1]
    job = httpx.get(f"{service}/v1/jobs/{job_id}", headers=AUTH).json()
    assert job["status"] == "succeeded"
    assert job["result"]["best"]["val_accuracy"] >= 0.90
    assert job["params"] == 8070

    events = stream(service, job_id, after=0)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    epochs = [e for e in events if e["type"] == "metric" and e["data"]["scope"] == "epoch"]
    assert len(epochs) == job["result"]["epochs"]
    middle = epochs[len(epochs) // 2]["seq"]
    assert stream(service, job_id, after=middle) == events[middle:]


def test_cnn_preset_reaches_97_percent_on_mnist_in_a_few_epochs(service: str) -> None:
    dataset = upload_mnist(service)
    spec = {
        "name": "mnist-cnn",
        "dataset": dataset["id"],
        "model": {"preset": "cnn", "width": 16},
        "optimizer": {"name": "adam", "lr": 0.003},
        "training": {
            "epochs": 5,
            "batch_size": 64,
            "normalize": "scale",
            "target": {"metric": "val_accuracy", "value": 0.97},
        },
    }
    job = httpx.post(f"{service}/v1/jobs", json=spec, headers=AUTH).json()

    events = stream(service, job["id"], after=0)

    assert events[-1]["data"]["status"] == "succeeded"
    done = httpx.get(f"{service}/v1/jobs/{job['id']}", headers=AUTH).json()
    assert done["reason"] == "target_reached"
    assert done["result"]["final"]["val_accuracy"] >= 0.97
    assert done["spec"]["model"]["preset"] == "cnn"
    assert [layer["type"] for layer in done["spec"]["model"]["layers"]][:3] == [
        "conv2d",
        "batchnorm2d",
        "maxpool2d",
    ]


def test_the_admin_creates_a_tenants_key_with_the_taas_command_and_it_walls_the_tenant_off(
    service: str,
) -> None:
    def taas(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*TAAS, *args, "--url", service],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=cli_env() | env,
        )

    made = taas("keys", "create", "alpha", "--name", "e2e")
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)
    alpha = {"Authorization": f"Bearer {key['key']}"}
    job = httpx.post(
        f"{service}/v1/jobs", json={**SEED_JOB_EXAMPLE, "dataset": "synthetic"}, headers=alpha
    )
    assert job.status_code == 201, job.text
    assert httpx.get(f"{service}/v1/jobs/{job.json()['id']}", headers=AUTH).status_code == 404
    shown = taas("status", job.json()["id"], TAAS_TOKEN=key["key"])
    assert shown.returncode == 0 and job.json()["id"] in shown.stdout

    assert taas("keys", "revoke", key["id"]).returncode == 0
    assert httpx.get(f"{service}/v1/jobs", headers=alpha).status_code == 401
    assert key["key"] not in taas("keys", "list").stdout
