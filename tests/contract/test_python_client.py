"""A client generated from the served document, used alone, does what a user needs.

openapi-python-client generates with --fail-on-warning (any endpoint or schema it cannot
use fails the test), then the generated package alone submits the seed job to a live
server with a real worker, follows it, reads typed results, uploads a dataset and
downloads the weights as bytes.
"""

import hashlib
import importlib
import io
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn

from app.config import Settings
from app.main import create_app
from app.spec.schemas import SEED_JOB_EXAMPLE
from tests.conftest import ADMIN_TOKEN, free_port

BIN = Path(sys.executable).parent
PACKAGE = "taas_generated"
TERMINAL = {"succeeded", "failed", "cancelled"}


@pytest.fixture
def live_url(settings: Settings) -> Iterator[str]:
    """The API under uvicorn on a free port, as a user reaches it."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield url
    server.should_exit = True
    thread.join(30)


def generate(document: dict[str, Any], into: Path) -> None:
    spec = into / "openapi.json"
    spec.write_text(json.dumps(document))
    generator = shutil.which("openapi-python-client", path=str(BIN))
    assert generator, "openapi-python-client is a dev dependency: pip install -e .[dev]"
    run = subprocess.run(
        [
            generator,
            "generate",
            "--path",
            str(spec),
            "--output-path",
            str(into / PACKAGE),
            "--meta",
            "none",
            "--fail-on-warning",
        ],
        capture_output=True,
        text=True,
        env=os.environ | {"PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"},
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Warning" not in run.stdout + run.stderr, run.stdout + run.stderr


def small_npz() -> bytes:
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    np.savez(buffer, x=rng.normal(size=(64, 4)).astype(np.float32), y=np.arange(64) % 2)
    return buffer.getvalue()


@pytest.mark.usefixtures("worker")
def test_generated_client_submits_follows_uploads_and_downloads(
    live_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    generate(httpx.get(f"{live_url}/openapi.json").json(), tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [m for m in sys.modules if m.startswith(PACKAGE)]:
        del sys.modules[name]

    def module(name: str) -> Any:
        return importlib.import_module(f"{PACKAGE}.{name}")

    client = module("client").AuthenticatedClient(base_url=live_url, token=ADMIN_TOKEN)
    with client:
        use_generated_client(client, module)


def use_generated_client(client: Any, module: Any) -> None:
    models, types = module("models"), module("types")
    api = {name: module(f"api.{group}.{name}") for group, name in [
        ("jobs", "submit_job"), ("jobs", "get_job"), ("jobs", "list_jobs"),
        ("jobs", "download_model"), ("jobs", "list_job_events"),
        ("datasets", "upload_dataset"),
    ]}  # fmt: skip

    seed = json.loads(json.dumps(SEED_JOB_EXAMPLE))
    seed["training"] = seed["training"] | {"epochs": 2, "target": None}
    submitted = api["submit_job"].sync(client=client, body=models.JobSpec.from_dict(seed))
    assert isinstance(submitted, models.JobOut), submitted

    deadline = time.monotonic() + 300
    job = submitted
    while job.status.value not in TERMINAL:
        assert time.monotonic() < deadline, f"job still {job.status} after 300 s"
        time.sleep(0.5)
        job = api["get_job"].sync(submitted.id, client=client)
    assert job.status is models.JobStatus.SUCCEEDED, job.reason
    # Typed reads: the spec is a JobSpec with typed layers, the result a JobResult.
    assert isinstance(job.spec, models.JobSpec)
    assert isinstance(job.spec.model.layers[1], models.LinearLayer)
    assert job.spec.model.layers[1].activation is models.Activation.RELU
    assert job.spec.training.compile_ is False
    assert isinstance(job.result, models.JobResult)
    assert job.result.epochs == 2
    assert 0.0 <= job.result.final["val_accuracy"] <= 1.0

    page = api["list_jobs"].sync(client=client, status=models.JobStatus.SUCCEEDED)
    assert [j.id for j in page.items] == [job.id]
    events = api["list_job_events"].sync(job.id, client=client)
    assert events.next_cursor is None
    kinds = {type(event).__name__ for event in events.items}
    assert {"StatusEvent", "MetricEvent", "CheckpointEvent", "ResultEvent"} <= kinds, kinds
    (result,) = [e for e in events.items if isinstance(e, models.ResultEvent)]
    assert result.data.result.epochs == 2
    statuses = [e.data.status for e in events.items if isinstance(e, models.StatusEvent)]
    assert statuses[-1] is models.JobStatus.SUCCEEDED

    weights = api["download_model"].sync_detailed(job.id, client=client)
    assert weights.status_code == 200
    payload = weights.parsed.payload.read()
    assert isinstance(payload, bytes)
    assert hashlib.sha256(payload).hexdigest() == weights.headers["x-checksum-sha256"]

    form = models.UploadDatasetForm(
        format_=models.UploadDatasetFormFormat.NPZ,
        name="tiny",
        file=types.File(payload=io.BytesIO(small_npz()), file_name="tiny.npz"),
    )
    dataset = api["upload_dataset"].sync(client=client, body=form)
    assert isinstance(dataset, models.DatasetOut), dataset
    assert dataset.samples == 64

    missing = api["get_job"].sync("no-such-job", client=client)
    assert isinstance(missing, models.ErrorOut)
    assert missing.error.code is models.ErrorCode.JOB_NOT_FOUND
