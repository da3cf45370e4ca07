"""The janitor: a real `taas api` killed (SIGKILL) at each point of an upload leaves what
the sweep at its next start removes; folders a row points to, and young ones, stay.

No test hook: the test holds a database lock so the API's commit waits, which stops it
between the rename and the commit, and watches the file system to kill it mid-write."""

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from sqlalchemy import create_engine, text

from app.config import Settings
from app.db import make_engine, make_session_factory
from app.janitor import sweep
from tests.conftest import ADMIN_HEADERS, ROOT, free_port, settings_env, wait_for_http

pytestmark = pytest.mark.usefixtures("backend")
TAAS = Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin" / "taas"
WATCH_TIMEOUT_S = 120.0
# 100 000 images of 28x28: a write long enough to be caught in the act.
SAMPLES = 100_000


def idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape
    )
    return header + array.astype(np.uint8).tobytes()


def upload_files() -> dict[str, tuple[str, bytes]]:
    images = np.random.default_rng(0).integers(0, 255, (SAMPLES, 28, 28), dtype=np.uint8)
    labels = np.arange(SAMPLES) % 10
    return {"images": ("images", idx(images)), "labels": ("labels", idx(labels))}


class Api:
    """A real `taas api` process on the test's settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings, self.port = settings, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        with (settings.data_dir / f"api-{self.port}.log").open("wb") as log:
            self.process = subprocess.Popen(
                [str(TAAS), "api", "--port", str(self.port)],
                cwd=ROOT,
                env=settings_env(settings),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for_http(f"{self.url}/healthz", self.process)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)


def upload_in_background(api: Api, files: dict[str, tuple[str, bytes]]) -> threading.Thread:
    def send() -> None:
        # The API dies under it: whatever the client sees is beside the point.
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(
                f"{api.url}/v1/datasets",
                files=files,
                data={"format": "idx"},
                headers=ADMIN_HEADERS,
                timeout=WATCH_TIMEOUT_S,
            )

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def wait_for(found: Callable[[], list[Path]], what: str) -> list[Path]:
    deadline = time.monotonic() + WATCH_TIMEOUT_S
    while time.monotonic() < deadline:
        if paths := found():
            return paths
        time.sleep(0.001)
    pytest.fail(f"never saw {what}")


def datasets_dir(settings: Settings) -> Path:
    return settings.artifacts_dir / "datasets"


def staging(settings: Settings) -> list[Path]:
    root = datasets_dir(settings)
    return [p for p in root.iterdir() if p.name.startswith(".staging-")] if root.is_dir() else []


def placed(settings: Settings) -> list[Path]:
    root = datasets_dir(settings)
    return [p for p in root.iterdir() if p.name.startswith("ds_")] if root.is_dir() else []


def writing_images(settings: Settings) -> list[Path]:
    """Staging folders whose images are being written: their quota check is done."""
    found = []
    for folder in staging(settings):
        with contextlib.suppress(OSError):
            if (folder / "x.npy").stat().st_size > 1 << 20:
                found.append(folder)
    return found


@contextlib.contextmanager
def datasets_locked(settings: Settings, backend: str) -> Iterator[None]:
    """Hold the database so that an insert into datasets waits (readers do not)."""
    if backend == "sqlite":
        connection = sqlite3.connect(settings.data_dir / "taas.db", isolation_level=None)
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            connection.rollback()
            connection.close()
        return
    engine = create_engine(settings.sqlalchemy_url)
    with engine.connect() as connection:
        connection.execute(text("LOCK TABLE datasets IN SHARE ROW EXCLUSIVE MODE"))
        try:
            yield
        finally:
            connection.rollback()
    engine.dispose()


def swept_at_restart(settings: Settings, leftovers: list[Path]) -> None:
    """A new API with no grace removes `leftovers` at its start and keeps what rows use."""
    api = Api(settings.model_copy(update={"janitor_grace_s": 0.0}))
    try:
        deadline = time.monotonic() + WATCH_TIMEOUT_S
        while any(p.exists() for p in leftovers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [p for p in leftovers if p.exists()]
        stored = httpx.get(f"{api.url}/v1/datasets", headers=ADMIN_HEADERS).json()["items"]
        kept = {p.name for p in placed(settings)}
        assert kept == {d["id"] for d in stored}
    finally:
        api.stop()


@pytest.fixture
def api(settings: Settings) -> Iterator[Api]:
    server = Api(settings)
    yield server
    server.stop()


def test_a_kill_mid_body_leaves_nothing_in_the_artifacts(settings: Settings, api: Api) -> None:
    # Half a multipart body, then the kill: the body was still being read into the
    # parser's own unlinked temporary file, so nothing under artifacts/ exists yet.
    with socket.create_connection(("127.0.0.1", api.port)) as connection:
        body = b"x" * (4 << 20)
        connection.sendall(
            b"POST /v1/datasets HTTP/1.1\r\nHost: test\r\n"
            + f"Authorization: {ADMIN_HEADERS['Authorization']}\r\n".encode()
            + b"Content-Type: multipart/form-data; boundary=b\r\n"
            + f"Content-Length: {2 * len(body)}\r\n\r\n".encode()
            + b"--b\r\nContent-Disposition: form-data; name=images; filename=i\r\n\r\n"
            + body
        )
        api.kill()
    assert staging(settings) == [] and placed(settings) == []


def test_a_kill_while_the_arrays_are_written_leaves_staging_that_the_sweep_removes(
    settings: Settings, api: Api
) -> None:
    kept = httpx.post(
        f"{api.url}/v1/datasets",
        files={"images": ("i", idx(np.zeros((4, 2, 2)))), "labels": ("l", idx(np.arange(4) % 2))},
        data={"format": "idx"},
        headers=ADMIN_HEADERS,
    )
    assert kept.status_code == 201, kept.text

    upload_in_background(api, upload_files())
    leftovers = wait_for(lambda: staging(settings), "a staging folder")
    api.kill()

    assert [p for p in leftovers if p.exists()] == leftovers
    swept_at_restart(settings, leftovers)
    assert [p.name for p in placed(settings)] == [kept.json()["id"]]


def test_a_kill_between_the_rename_and_the_commit_leaves_a_folder_the_sweep_removes(
    settings: Settings, api: Api, backend: str
) -> None:
    upload_in_background(api, upload_files())
    # Once the images are being written the quota check is done: lock the table then (on
    # SQLite any transaction waits), and the arrays go into place under their final name
    # while the row waits for the lock.
    wait_for(lambda: writing_images(settings), "images being written")
    with datasets_locked(settings, backend):
        orphans = wait_for(lambda: placed(settings), "the renamed dataset folder")
        api.kill()

    # The API is dead: the folder has no row, and nothing will ever make one.
    assert all(p.exists() for p in orphans)
    swept_at_restart(settings, orphans)


def test_the_sweep_removes_old_leftovers_of_every_kind_and_keeps_young_ones(
    settings: Settings,
) -> None:
    engine = make_engine(settings)
    sessions = make_session_factory(engine)
    root = settings.artifacts_dir
    (root / "datasets" / ".staging-young").mkdir(parents=True)
    old = [root / "datasets" / ".staging-old", root / "datasets" / "ds_orphan"]
    old += [root / "checkpoints" / "uploads" / "ckpt_orphan", root / "checkpoints" / "job_x" / "c"]
    for folder in old:
        folder.mkdir(parents=True)
        (folder / "x.npy").write_bytes(b"0")
        long_ago = time.time() - 7200
        os.utime(folder / "x.npy", (long_ago, long_ago))
        os.utime(folder, (long_ago, long_ago))

    removed = sweep(sessions=sessions, root=root, grace_s=3600)
    engine.dispose()

    assert sorted(removed) == sorted(old)
    assert (root / "datasets" / ".staging-young").exists()
