"""`taas login` stores a key in the user's config folder; every command then uses it."""

import json
import stat
from pathlib import Path

from tests.cli.conftest import Taas
from tests.conftest import ADMIN_TOKEN


def make_key(taas: Taas, api_url: str, tenant: str) -> str:
    made = taas("keys", "create", tenant, "--url", api_url, "--token", ADMIN_TOKEN)
    assert made.returncode == 0, made.stderr
    return str(json.loads(made.stdout)["key"])


def test_a_key_stored_by_login_is_used_from_another_folder(
    taas: Taas, api_url: str, tmp_path: Path
) -> None:
    key = make_key(taas, api_url, "alpha")

    logged = taas("login", "--url", api_url, "--token", key)

    assert logged.returncode == 0, logged.stderr
    stored = tmp_path / "config" / "taas" / "config.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert json.loads(stored.read_text())["hosts"][api_url]["token"] == key
    # No --url, no --token: both come from the login (the fixture runs in another folder).
    who = taas("whoami")
    assert who.returncode == 0, who.stderr
    assert who.stdout.startswith(f"tenant alpha at {api_url}")
    assert taas("datasets", "list").returncode == 0


def test_token_and_url_options_override_the_login(taas: Taas, api_url: str) -> None:
    alpha, beta = make_key(taas, api_url, "alpha"), make_key(taas, api_url, "beta")
    assert taas("login", "--url", api_url, "--token", alpha).returncode == 0

    assert taas("whoami", "--token", beta).stdout.startswith("tenant beta")
    assert taas("whoami", TAAS_TOKEN=beta).stdout.startswith("tenant beta")
    elsewhere = taas("whoami", "--url", "http://127.0.0.1:9")  # no key is sent elsewhere
    assert elsewhere.returncode == 1 and "cannot reach" in elsewhere.stderr


def test_login_prompts_for_what_is_missing(taas: Taas, api_url: str) -> None:
    key = make_key(taas, api_url, "gamma")

    logged = taas("login", "--url", api_url, stdin=key + "\n")

    assert logged.returncode == 0, logged.stderr
    assert key not in logged.stdout
    assert taas("whoami").stdout.startswith("tenant gamma")


def test_login_with_a_wrong_key_stores_nothing(taas: Taas, api_url: str, tmp_path: Path) -> None:
    refused = taas("login", "--url", api_url, "--token", "taas_not_a_real_key_0000000000")

    assert refused.returncode == 1
    assert "401" in refused.stderr
    assert not (tmp_path / "config" / "taas" / "config.json").exists()
