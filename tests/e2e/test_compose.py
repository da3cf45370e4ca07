"""The compose stack for real (`make compose-test`): built, started, training, stopped.

On a machine without image registries: a Debian base image from debootstrap (kept by name
for the next run), the service's images built on it, Postgres and Redis from Debian's
packages (tests/e2e/compose/compose.test.yml), all driven through the published port.
"""

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from tests.conftest import IN_CI, ROOT, free_port
from tests.e2e.docker_engine import base_image, build_inputs, engine_answers, running_engine

MNIST = Path(os.environ.get("TAAS_TEST_MNIST_DIR", ROOT.parent / "shared" / "datasets" / "mnist"))
BASE_IMAGE = os.environ.get("TAAS_TEST_BASE_IMAGE", "taas-base:bookworm")
OVERRIDE = ROOT / "tests" / "e2e" / "compose" / "compose.test.yml"
TERMINAL = {"succeeded", "failed", "cancelled"}
WORKERS = ("worker-cpu", "worker-cpu-2")
TIMEOUT_S = 600.0

pytestmark = [
    pytest.mark.compose,
    pytest.mark.skipif(
        not IN_CI and not engine_answers(),
        reason="needs a docker engine (under CI=true the test starts one itself)",
    ),
]


class Stack:
    """`docker compose` on the stack's files, under a project name of this run's own."""

    def __init__(self, project: str, port: int) -> None:
        self.project = project
        self.url = f"http://127.0.0.1:{port}"
        self.env = os.environ | {
            "BASE_IMAGE": BASE_IMAGE,
            "TAAS_IMAGE": "taas-e2e",
            "TAAS_PORT": str(port),
        }
        self.headers: dict[str, str] = {}

    def compose(self, *args: str, timeout_s: float = TIMEOUT_S, check: bool = True) -> str:
        files = ["-f", str(ROOT / "docker-compose.yml"), "-f", str(OVERRIDE)]
        done = subprocess.run(
            ["docker", "compose", *files, "-p", self.project, *args],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            cwd=ROOT,
            env=self.env,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"compose {' '.join(args)}: {done.returncode}\n{done.stderr}")
        return done.stdout

    def container(self, service: str) -> str:
        return self.compose("ps", "-q", "--all", service).strip()

    def inspect(self, service: str, template: str) -> str:
        done = subprocess.run(
            ["docker", "inspect", "-f", template, self.container(service)],
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.strip()

    def job(self, job_id: str) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/v1/jobs/{job_id}", headers=self.headers, timeout=30)
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        return job

    def follow(self, job_id: str) -> list[dict[str, Any]]:
        """The job's events over its websocket, until the server closes it at the end."""
        ws = self.url.replace("http", "ws", 1)
        url = f"{ws}/v1/jobs/{job_id}/stream?after=0"
        with connect(url, additional_headers=self.headers, open_timeout=30) as socket:
            events = [json.loads(raw) for raw in socket]
            assert socket.close_code == 1000
        return events


def wait_for(check: Any, what: str, timeout_s: float = TIMEOUT_S) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(1)
    pytest.fail(f"timed out waiting for {what}")


def ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def timings() -> dict[str, float]:
    return {}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, timings: dict[str, float]) -> Iterator[Stack]:
    if not MNIST.is_dir():
        pytest.fail(f"MNIST is not at {MNIST} (set TAAS_TEST_MNIST_DIR)")
    logs = tmp_path_factory.mktemp("compose")
    with running_engine(logs / "dockerd.log"):
        timings["base image"] = base_image(BASE_IMAGE)
        build_inputs(ROOT / "docker" / "local")
        stack = Stack(f"taas-e2e-{os.getpid()}", free_port())
        try:
            started = time.monotonic()
            stack.compose("build", timeout_s=1800)
            timings["build"] = time.monotonic() - started
            started = time.monotonic()
            stack.compose("up", "-d")
            wait_for(lambda: ready(stack.url), "the API's /readyz on the published port")
            timings["up"] = time.monotonic() - started
            yield stack
        finally:
            told = stack.compose("logs", "--no-color", check=False)
            (logs / "stack.log").write_text(told)
            sys.stderr.write(told[-30_000:])  # pytest shows it when the test fails
            stack.compose("down", "--volumes", "--remove-orphans", "--timeout", "60", check=False)
            # Rebuilt images leave their predecessors untagged; only ours carry this label.
            subprocess.run(
                ["docker", "image", "prune", "-f", "--filter", "label=taas.e2e=1"],
                capture_output=True,
                check=False,
            )
        assert stack.compose("ps", "-q", "--all") == ""


def test_the_gpu_profile_adds_a_cuda_worker_that_reserves_nvidia_devices() -> None:
    stack = Stack("taas-e2e-config", 8000)
    plain = json.loads(stack.compose("config", "--format", "json"))
    gpu = json.loads(stack.compose("--profile", "gpu", "config", "--format", "json"))

    assert "worker-gpu" not in plain["services"]
    worker = gpu["services"]["worker-gpu"]
    [device] = worker["deploy"]["resources"]["reservations"]["devices"]
    assert (device["driver"], device["capabilities"]) == ("nvidia", ["gpu"])
    assert worker["environment"]["TAAS_WORKER_DEVICE"] == "cuda"
    assert worker["build"]["args"]["TORCH_INDEX"].startswith("https://download.pytorch.org/whl/cu")
    assert "g++" in worker["build"]["args"]["RUNTIME_PACKAGES"]  # torch.compile on CUDA
    cpu = gpu["services"]["worker-cpu"]
    assert cpu["environment"]["TAAS_WORKER_DEVICE"] == "cpu"
    # Both images install the same torch: the Dockerfile's one TORCH_VERSION.
    assert "TORCH_VERSION" not in worker["build"]["args"]
    assert "TORCH_VERSION" not in gpu["services"]["migrate"]["build"]["args"]
    for name in ("worker-cpu", "worker-gpu"):
        grace = gpu["services"][name]["stop_grace_period"]
        assert float(grace.rstrip("s")) > float(
            gpu["services"][name]["environment"]["TAAS_STOP_GRACE_S"]
        )
        assert gpu["services"][name]["environment"]["TAAS_GANG_HOST"] == name


def test_the_image_carries_every_file_of_the_packages(stack: Stack) -> None:
    """Package data (the dashboard's files, Alembic's template) is in the image: a
    regular install copies only what pyproject.toml names."""
    listing = (
        "import importlib, pathlib\n"
        "for name in ('app', 'worker', 'migrations'):\n"
        "    root = pathlib.Path(importlib.import_module(name).__file__).parent\n"
        "    for path in root.rglob('*'):\n"
        "        if path.is_file() and '__pycache__' not in path.parts:\n"
        "            print(name + '/' + path.relative_to(root).as_posix())\n"
    )
    installed = set(stack.compose("exec", "-T", "api", "python", "-c", listing).split())
    tracked = subprocess.run(
        ["git", "ls-files", "app", "worker", "migrations"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    ).stdout.split()
    assert tracked
    assert sorted(set(tracked) - installed) == []


def test_the_stack_trains_the_seed_job_on_mnist_and_a_stopped_worker_hands_its_job_over(
    stack: Stack, timings: dict[str, float], capsys: pytest.CaptureFixture[str]
) -> None:
    token = stack.compose("exec", "-T", "api", "taas", "token").strip()
    assert token.startswith("taas_")
    stack.headers = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{stack.url}/v1/jobs", timeout=30).status_code == 401

    images = (MNIST / "t10k-images-idx3-ubyte.gz").read_bytes()
    labels = (MNIST / "t10k-labels-idx1-ubyte.gz").read_bytes()
    upload = httpx.post(
        f"{stack.url}/v1/datasets",
        data={"name": "mnist", "format": "idx", "task": "classification"},
        files={"images": ("images.gz", images), "labels": ("labels.gz", labels)},
        headers=stack.headers,
        timeout=120,
    )
    assert upload.status_code == 201, upload.text
    dataset = upload.json()
    assert (dataset["samples"], dataset["classes"]) == (10_000, 10)

    # The seed job, as a user submits it, to the end, followed over its websocket.
    seed = json.loads((ROOT / "examples" / "seed-job.json").read_text())
    started = time.monotonic()
    submitted = httpx.post(
        f"{stack.url}/v1/jobs", json=seed | {"dataset": dataset["id"]}, headers=stack.headers
    )
    assert submitted.status_code == 201, submitted.text
    events = stack.follow(submitted.json()["id"])
    timings["seed job"] = time.monotonic() - started
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["data"]["status"] == "succeeded"
    done = stack.job(submitted.json()["id"])
    assert done["result"]["best"]["val_accuracy"] >= 0.90
    assert [e for e in events if e["type"] == "metric" and e["data"]["scope"] == "epoch"]

    # A longer job; the worker holding it is stopped as compose stops it (SIGTERM, then
    # the grace period): it checkpoints, hands the job back, and the other worker resumes.
    long = seed | {"dataset": dataset["id"], "name": "handover"}
    long["training"] = {k: v for k, v in seed["training"].items() if k != "target"}
    long["training"]["epochs"] = 12
    job_id = httpx.post(f"{stack.url}/v1/jobs", json=long, headers=stack.headers).json()["id"]

    def second_epoch() -> dict[str, Any] | None:
        metrics = httpx.get(f"{stack.url}/v1/jobs/{job_id}/metrics", headers=stack.headers)
        epochs = [m for m in metrics.json()["items"] if m["data"]["scope"] == "epoch"]
        return stack.job(job_id) if len(epochs) >= 2 else None

    running = wait_for(second_epoch, "the long job's second epoch")
    hostname = running["worker"].rsplit(":", 1)[0]
    holder = next(s for s in WORKERS if stack.inspect(s, "{{.Config.Hostname}}") == hostname)
    other = next(s for s in WORKERS if s != holder)
    stack.compose("stop", holder)
    assert stack.inspect(holder, "{{.State.ExitCode}}") == "0"  # stopped in its grace period

    events = stack.follow(job_id)
    done = stack.job(job_id)
    assert (done["status"], done["attempt"], done["restarts"]) == ("succeeded", 2, 0)
    assert done["worker"].rsplit(":", 1)[0] == stack.inspect(other, "{{.Config.Hostname}}")
    stops = [e["data"] for e in events if e["type"] == "checkpoint" and e["data"]["kind"] == "stop"]
    assert len(stops) == 1
    resumed = [
        e["data"]["message"]
        for e in events
        if e["type"] == "log" and "resumed after" in e["data"]["message"]
    ]
    assert len(resumed) == 1
    assert resumed[0].startswith(f"resumed after epoch {stops[0]['epoch']} ")
    epochs = [
        e["data"]["epoch"]
        for e in events
        if e["type"] == "metric" and e["data"]["scope"] == "epoch"
    ]
    assert epochs == list(range(1, 13))

    sizes = {
        name: int(subprocess.check_output(["docker", "image", "inspect", "-f", "{{.Size}}", name]))
        for name in ("taas-e2e:cpu", BASE_IMAGE)
    }
    with capsys.disabled():
        print("\ncompose test timings (s):", {k: round(v, 1) for k, v in timings.items()})
        print("image sizes (MB):", {k: round(v / 1e6) for k, v in sizes.items()})
