"""Where the `taas` command finds its API and key, the way the gh and huggingface CLIs do.

The API: `--url` (or TAAS_URL), else the one `taas login` stored, else the latest local
`taas up`'s, else :8000. The key: `--token` (or TAAS_TOKEN), then TAAS_ADMIN_TOKEN, then what
`taas login` stored for that URL in the user's config folder (XDG), then the admin token
of the local `taas up` that serves that URL (it records where its token file is), then,
for a server on this machine, `./.taas/admin_token`. Keys are stored per URL, so one is
never sent to another server.
"""

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from app.cli.errors import CliError

DEFAULT_URL = "http://127.0.0.1:8000"
CONFIG_NAME = "config.json"
# Keys are secrets: only the user may read the file (and list the folder).
FILE_MODE = 0o600
DIR_MODE = 0o700
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def config_path() -> Path:
    """`$XDG_CONFIG_HOME/taas/config.json`, `~/.config/taas/config.json` by default."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "taas" / CONFIG_NAME


def load() -> dict[str, Any]:
    path = config_path()
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise CliError(
            f"cannot read {path}: {error}; fix or delete it, then `taas login`"
        ) from error
    return data if isinstance(data, dict) else {}


def save(data: dict[str, Any]) -> Path:
    """Write the config atomically, readable by the user alone."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".config-")
    try:
        os.fchmod(descriptor, FILE_MODE)
        with os.fdopen(descriptor, "w") as file:
            json.dump(data, file, indent=2)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def normalize(url: str) -> str:
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise CliError(f"{url!r} is not an API address: give one like {DEFAULT_URL}")
    return url


def _host(data: dict[str, Any], url: str) -> dict[str, Any]:
    hosts = data.setdefault("hosts", {})
    entry: dict[str, Any] = hosts.setdefault(url, {})
    return entry


def store_login(url: str, token: str) -> Path:
    """`taas login`: this URL becomes the default, and this key its key."""
    data = load()
    data["url"] = url
    _host(data, url)["token"] = token
    return save(data)


def record_local_server(url: str, admin_token_file: Path) -> None:
    """`taas up`: remember where the admin token of the server at `url` lives (not the
    token), so the `taas` command finds it from any folder."""
    data = load()
    data["local_url"] = url
    _host(data, url)["admin_token_file"] = str(admin_token_file.resolve())
    save(data)


def local_admin_token_file() -> Path | None:
    """The admin token file of the latest local `taas up`, if it recorded one."""
    data = load()
    kept = data.get("hosts", {}).get(data.get("local_url"), {}).get("admin_token_file")
    return Path(kept) if kept else None


@dataclass(frozen=True)
class Target:
    url: str
    token: str | None
    source: str  # where the token came from, for `taas whoami`


def resolve(url: str | None, token: str | None) -> Target:
    """The API and the key a client command uses (see the module's docstring)."""
    data = load()
    chosen = normalize(url or data.get("url") or data.get("local_url") or DEFAULT_URL)
    if token:
        return Target(chosen, token, "--token or TAAS_TOKEN")
    if admin := os.environ.get("TAAS_ADMIN_TOKEN"):
        return Target(chosen, admin, "TAAS_ADMIN_TOKEN")
    host = data.get("hosts", {}).get(chosen, {})
    if host.get("token"):
        return Target(chosen, str(host["token"]), f"taas login ({config_path()})")
    for kept in _admin_token_files(host, local=_is_loopback(chosen)):
        if kept.is_file():
            return Target(chosen, kept.read_text().strip(), f"the admin token in {kept}")
    return Target(chosen, None, "none")


def _is_loopback(url: str) -> bool:
    return urlsplit(url).hostname in LOOPBACK


def _admin_token_files(host: dict[str, Any], *, local: bool) -> list[Path]:
    """The recorded token file of the server at this URL; for a server on this machine
    also the one in this folder's data dir (never sent to another machine)."""
    from app.keys.service import admin_token_path

    files = [Path(host["admin_token_file"])] if host.get("admin_token_file") else []
    if local:
        files.append(admin_token_path(Path(os.environ.get("TAAS_DATA_DIR", ".taas"))))
    return files
