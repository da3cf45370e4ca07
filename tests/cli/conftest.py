"""The `taas` command as a user runs it: a real process against a real API process."""

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app.config import Settings
from tests.conftest import ROOT, free_port, settings_env, wait_for_http

TAAS = [sys.executable, "-m", "app.cli"]
Taas = Callable[..., subprocess.CompletedProcess[str]]
COMMAND_TIMEOUT_S = 120


def clean_env(home: Path) -> dict[str, str]:
    """No TAAS_* settings of the machine, and a config folder of the test's own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAAS_")}
    return env | {"XDG_CONFIG_HOME": str(home / "config"), "PYTHONPATH": str(ROOT)}


@pytest.fixture
def taas(tmp_path: Path) -> Taas:
    """Run `taas ARGS` in a folder that is not the repository, with its own config."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(exist_ok=True)

    def run(*args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*TAAS, *args],
            capture_output=True,
            text=True,
            cwd=elsewhere,
            env=clean_env(tmp_path) | env,
            input=stdin,
            timeout=COMMAND_TIMEOUT_S,
        )

    return run


@pytest.fixture
def api_url(settings: Settings, tmp_path: Path) -> Iterator[str]:
    """`taas api` on a free port, on the test's database (no worker)."""
    port = free_port()
    log_path = tmp_path / "api.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*TAAS, "api", "--port", str(port)],
            cwd=ROOT,
            env=settings_env(settings),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/readyz", process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(30)
