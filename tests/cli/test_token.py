"""`taas token`: the admin token, as `docker compose exec api taas token` shows it."""

import os
import subprocess
import sys
from pathlib import Path

from app.config import Settings
from app.keys.service import admin_token_path, server_secrets
from tests.conftest import ROOT


def token(data_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TAAS_")}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "token"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=clean | {"TAAS_DATA_DIR": str(data_dir), "XDG_CONFIG_HOME": str(data_dir), **env},
    )


def test_the_token_the_server_keeps_in_the_data_dir_is_printed(tmp_path: Path) -> None:
    kept = server_secrets(Settings(data_dir=tmp_path)).admin_token  # as the API makes it
    done = token(tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == kept == admin_token_path(tmp_path).read_text().strip()


def test_a_token_from_the_environment_wins(tmp_path: Path) -> None:
    done = token(tmp_path, TAAS_ADMIN_TOKEN="an-admin-token-of-length")
    assert done.stdout.strip() == "an-admin-token-of-length"


def test_no_token_yet_is_one_sentence_and_exit_1(tmp_path: Path) -> None:
    done = token(tmp_path / "empty")
    assert done.returncode == 1
    assert "taas up" in done.stdout + done.stderr
    assert len((done.stdout + done.stderr).strip().splitlines()) <= 3
