"""`taas token`: the admin token, as `docker compose exec api taas token` shows it."""

import os
import subprocess
import sys
from pathlib import Path

from app.keys.service import admin_token_path
from tests.conftest import ROOT


def token(data_dir: Path, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TAAS_")}
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "token"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=clean | {"TAAS_DATA_DIR": str(data_dir), **env},
        check=True,
    )
    return done.stdout.strip()


def test_the_token_kept_in_the_data_dir_is_printed_and_made_once(tmp_path: Path) -> None:
    first = token(tmp_path)
    assert first.startswith("taas_")
    assert admin_token_path(tmp_path).read_text().strip() == first
    assert token(tmp_path) == first


def test_a_token_from_the_environment_wins(tmp_path: Path) -> None:
    assert token(tmp_path, TAAS_ADMIN_TOKEN="an-admin-token-of-length") == (
        "an-admin-token-of-length"
    )
