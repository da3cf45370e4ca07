"""Server commands: `taas up` (API + one worker, supervised), `api`, `worker`, `migrate`,
`token`.

The worker runs as its own process (`python -m worker`): the API package never imports
the worker. `taas up` supervises both: a process that dies is restarted, and one that
keeps dying stops the whole service loudly, so it is never half up without saying so.
"""

import contextlib
import errno
import os
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

import app.cli.config as config
from app.cli.app import cli, console
from app.cli.errors import CliError
from app.config import Settings

DataDir = Annotated[Path, typer.Option(help="Database, broker and artifacts live here.")]
Host = Annotated[str, typer.Option(envvar="TAAS_HOST", help="The address the API listens on.")]
Port = Annotated[int, typer.Option(envvar="TAAS_PORT", help="The API's port.")]
# The API must answer /readyz this soon after it starts, or `taas up` gives up.
STARTUP_TIMEOUT_S = 120.0
POLL_S = 0.2
# A process that dies this many times within the window is not worth restarting again.
MAX_CRASHES = 5
CRASH_WINDOW_S = 60.0
STOP_TIMEOUT_S = 10.0
PR_SET_PDEATHSIG = 1


def _migrate(data_dir: Path | None) -> None:
    from app.migrate import upgrade

    settings = Settings(data_dir=data_dir) if data_dir is not None else Settings()
    upgrade(settings)


def check_port_free(host: str, port: int) -> None:
    """Fail now, before anything says "up", when the port is taken (uvicorn would only
    find out after the migrations and the worker had started)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise CliError(f"cannot listen on {host}: {error.strerror}") from error
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        # As uvicorn binds: a port held only by TIME_WAIT connections counts as free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise CliError(
                    f"port {port} on {host} is already in use (another `taas up`?): stop"
                    f" what holds it, or pick another port: --port 8001 (make run PORT=8001)"
                ) from error
            raise CliError(f"cannot listen on {host}:{port}: {error.strerror}") from error


def _die_with_parent() -> None:
    """In the child before exec: if `taas up` itself is killed, its children follow it
    instead of serving on, unsupervised (Linux; elsewhere the supervisor's own stop)."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Child:
    """One supervised process: its command, its latest run and its recent crashes."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.name, self.argv, self.env = name, argv, env
        self.crashes: deque[float] = deque()
        self.process = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        preexec = _die_with_parent if sys.platform == "linux" else None
        return subprocess.Popen(self.argv, env=self.env, preexec_fn=preexec)

    def exit_text(self) -> str:
        code = self.process.returncode
        if code is not None and code < 0:
            return f"was killed by {signal.Signals(-code).name}"
        return f"exited with code {code}"

    def restart(self) -> bool:
        """Start it again after a crash; False when it crashed too often to go on."""
        now = time.monotonic()
        self.crashes.append(now)
        while self.crashes and self.crashes[0] < now - CRASH_WINDOW_S:
            self.crashes.popleft()
        if len(self.crashes) >= MAX_CRASHES:
            return False
        self.process = self._start()
        return True

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _wait_ready(url: str, api: Child) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if api.process.poll() is not None:
            raise CliError(f"the API {api.exit_text()} before it was ready (its output is above)")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        time.sleep(POLL_S)
    raise CliError(f"the API did not answer {url}/readyz within {STARTUP_TIMEOUT_S:.0f} s")


def _client_url(host: str, port: int) -> str:
    connect_to = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    return f"http://{connect_to}:{port}"


@cli.command()
def up(host: Host = "127.0.0.1", port: Port = 8000, data_dir: DataDir = Path(".taas")) -> None:
    """Upgrade the database, then run the API and one worker until Ctrl-C (restarting
    either if it dies)."""
    check_port_free(host, port)
    data_dir.mkdir(parents=True, exist_ok=True)
    os.environ["TAAS_DATA_DIR"] = str(data_dir.resolve())
    _migrate(data_dir)
    url = _client_url(host, port)
    _announce_admin_token(Settings(data_dir=data_dir), url)
    env = dict(os.environ)
    uvicorn = ["-m", "uvicorn", "app.main:create_app", "--factory", "--log-level", "warning"]
    children: list[Child] = []

    def shut_down(*_: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, shut_down)
    code = 0
    try:
        api = Child("API", [sys.executable, *uvicorn, "--host", host, "--port", str(port)], env)
        children.append(api)
        children.append(
            Child("worker", [sys.executable, "-m", "worker", "--loglevel=WARNING"], env)
        )
        _wait_ready(url, api)
        console.print(f"taas is up: {url}/docs  (data in {data_dir.resolve()})")
        _supervise(children)
    except KeyboardInterrupt:
        pass
    except CliError:
        code = 1
        raise
    finally:
        for child in children:
            child.stop()
    raise typer.Exit(code)


def _supervise(children: list[Child]) -> None:
    """Restart whichever process dies; a crash loop ends `taas up` with an error."""
    while True:
        time.sleep(POLL_S)
        for child in children:
            if child.process.poll() is None:
                continue
            how = child.exit_text()
            if not child.restart():
                raise CliError(
                    f"the {child.name} {how}, its {MAX_CRASHES}th crash within"
                    f" {CRASH_WINDOW_S:.0f} s: stopping taas (its output is above)"
                )
            console.print(f"[yellow]the {child.name} {how}; restarted it[/yellow]")


def _announce_admin_token(settings: Settings, url: str | None) -> None:
    """Make the admin token (and the keys' secret) before the API starts, and say where
    it is kept; the token itself is never printed into a log (`taas token` prints it)."""
    from app.keys.service import admin_token_path, server_secrets

    if settings.admin_token is not None:
        console.print("admin token: from TAAS_ADMIN_TOKEN")
        return
    server_secrets(settings)
    path = admin_token_path(settings.data_dir).resolve()
    console.print(f"admin token: kept in {path} (`taas token` prints it)")
    if url is not None:
        try:
            config.record_local_server(url, path)
        except (OSError, CliError) as error:
            console.print(f"[yellow]could not record it in {config.config_path()}: {error}")


@cli.command()
def api(host: Host = "127.0.0.1", port: Port = 8000, workers: int = 1) -> None:
    """Run the API alone (the full stack runs workers separately)."""
    import uvicorn

    check_port_free(host, port)
    _announce_admin_token(Settings(), None)
    uvicorn.run("app.main:create_app", factory=True, host=host, port=port, workers=workers)


@cli.command()
def worker() -> None:
    """Run one worker: it trains one job at a time from the queue."""
    os.execv(sys.executable, [sys.executable, "-m", "worker"])


@cli.command()
def migrate(data_dir: Annotated[Path | None, typer.Option()] = None) -> None:
    """Upgrade the database to the newest schema."""
    _migrate(data_dir)
    console.print("database is at the newest revision")


@cli.command()
def token(
    data_dir: Annotated[
        Path | None, typer.Option(help="The data dir of `taas up` (default: TAAS_DATA_DIR).")
    ] = None,
) -> None:
    """Print the admin token of the local service (for curl: $(taas token))."""
    from app.keys.service import admin_token_path

    settings = Settings(data_dir=data_dir) if data_dir is not None else Settings()
    if settings.admin_token is not None:
        print(settings.admin_token)
        return
    path = admin_token_path(settings.data_dir)
    if not path.is_file() and data_dir is None:
        # Not in this folder: the one the latest local `taas up` recorded.
        path = config.local_admin_token_file() or path
    if not path.is_file():
        raise CliError(f"no admin token at {path.resolve()}: start `taas up`, or pass --data-dir")
    print(path.read_text().strip())
