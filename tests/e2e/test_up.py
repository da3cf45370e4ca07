"""A new user's path: `taas up`, upload MNIST, train the seed job, watch it stream."""

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from app.keys.service import admin_token_path
from app.spec.schemas import SEED_JOB_EXAMPLE
from tests.cli.conftest import clean_env
from tests.conftest import MNIST, ROOT, free_port, wait_for_http
from tests.processes import descendants

TAAS = [sys.executable, "-m", "app.cli"]
AUTH: dict[str, str] = {}
UP: dict[str, subprocess.Popen[bytes]] = {}
pytestmark = pytest.mark.skipif(not MNIST.is_dir(), reason="needs ../shared/datasets/mnist")


@pytest.fixture
def service(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = clean_env(tmp_path)
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    with (tmp_path / "up.log").open("wb") as log:
        process = subprocess.Popen(
            [*TAAS, "up", "--port", str(port), "--data-dir", str(tmp_path / "data")],
            cwd=workdir,  # everything must land under --data-dir, not the working directory
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_for_http(f"{url}/readyz", process)
            # `taas up` made an admin token and said where it is, never printing it into a
            # log; the `taas` command finds it from any folder, and these tests send it.
            token_file = admin_token_path(tmp_path / "data")
            token = token_file.read_text().strip()
            log_text = (tmp_path / "up.log").read_text()
            assert token not in log_text and str(token_file.resolve()) in log_text
            AUTH["Authorization"] = f"Bearer {token}"
            UP["process"] = process
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

    # `follow --after` on the finished job replays the stored events after that seq.
    replay = subprocess.run(
        [*TAAS, "follow", job_id, "--after", str(middle), "--url", service],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=cli_env(),
    )
    assert replay.returncode == 0, replay.stderr
    later = [e["data"]["epoch"] for e in epochs if e["seq"] > middle]
    shown = [line.split(":")[0] for line in replay.stdout.splitlines()]
    assert [f"epoch {n}" for n in later] == [line for line in shown if line.startswith("epoch ")]


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


def test_the_taas_command_finds_the_local_admin_token_from_any_folder(
    service: str, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def taas(*args: str) -> subprocess.CompletedProcess[str]:
        # The same user (config folder) as `taas up`, in another folder, given nothing.
        return subprocess.run(
            [*TAAS, *args], capture_output=True, text=True, cwd=elsewhere, env=clean_env(tmp_path)
        )

    who = taas("whoami")  # no --url either: the latest local `taas up` is the default
    assert who.returncode == 0, who.stderr
    assert who.stdout.startswith("tenant admin (admin)")
    assert taas("token").stdout.strip() == AUTH["Authorization"].removeprefix("Bearer ")


def children_of(pid: int) -> dict[str, int]:
    """`taas up`'s own children by role: the API (uvicorn) and the worker."""
    found = {}
    for child in descendants(pid):
        try:
            stat = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
            command = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(stat[1]) == pid and stat[0] != "Z":
            found["api" if b"uvicorn" in command else "worker"] = child
    return found


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_taas_up_restarts_a_process_killed_with_sigkill_and_keeps_serving(service: str) -> None:
    up = UP["process"]
    wait_for(lambda: set(children_of(up.pid)) == {"api", "worker"}, "both processes start")
    before = children_of(up.pid)

    os.kill(before["worker"], signal.SIGKILL)
    wait_for(
        lambda: children_of(up.pid).get("worker", before["worker"]) != before["worker"],
        "a new worker",
    )
    assert ready(service), "killing the worker took the API down"

    os.kill(before["api"], signal.SIGKILL)
    wait_for(lambda: children_of(up.pid).get("api", before["api"]) != before["api"], "a new API")
    wait_for(lambda: ready(service), "the restarted API answers")
    assert up.poll() is None
    # The restarted worker still trains: a job submitted now succeeds.
    job = httpx.post(
        f"{service}/v1/jobs",
        json={
            **SEED_JOB_EXAMPLE,
            "dataset": "synthetic",
            "training": {"epochs": 1, "batch_size": 32},
        },
        headers=AUTH,
    ).json()
    assert stream(service, job["id"], after=0)[-1]["data"]["status"] == "succeeded"
