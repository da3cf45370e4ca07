"""The `taas` command: run the service (up, api, worker, migrate) and use it (submit, follow, ...).

The server commands start the worker as its own process (`python -m worker`): the API
package never imports the worker, and a crash in one does not take down the other.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from app.config import Settings

cli = typer.Typer(help="taas: training as a service.", no_args_is_help=True, add_completion=False)
datasets_cli = typer.Typer(help="Upload and list datasets.", no_args_is_help=True)
cli.add_typer(datasets_cli, name="datasets")
checkpoints_cli = typer.Typer(help="Upload, describe and download weights.", no_args_is_help=True)
cli.add_typer(checkpoints_cli, name="checkpoints")
keys_cli = typer.Typer(help="Create, list and revoke tenants' keys.", no_args_is_help=True)
cli.add_typer(keys_cli, name="keys")
console = Console()

DEFAULT_URL = "http://127.0.0.1:8000"
Url = Annotated[str, typer.Option(envvar="TAAS_URL", help="The API's address.")]
DataDir = Annotated[Path, typer.Option(help="Database, broker and artifacts live here.")]
TERMINAL = {"succeeded", "failed", "cancelled"}
# How long `follow` keeps trying to reconnect to a stream that dropped.
RECONNECT_S = 30.0


def _env(data_dir: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    if data_dir is not None:
        env["TAAS_DATA_DIR"] = str(data_dir.resolve())
    return env


def _token() -> str | None:
    """The key the `taas` command sends: TAAS_TOKEN (a tenant's key), else the admin token
    from TAAS_ADMIN_TOKEN or the data dir where `taas up` keeps it."""
    from app.keys.service import admin_token_path

    token = os.environ.get("TAAS_TOKEN") or os.environ.get("TAAS_ADMIN_TOKEN")
    if token:
        return token
    kept = admin_token_path(Path(os.environ.get("TAAS_DATA_DIR", ".taas")))
    return kept.read_text().strip() if kept.is_file() else None


def _auth_headers() -> dict[str, str]:
    token = _token()
    return {"Authorization": f"Bearer {token}"} if token else {}


def _migrate(data_dir: Path | None) -> None:
    from app.migrate import upgrade

    settings = Settings(data_dir=data_dir) if data_dir is not None else Settings()
    upgrade(settings)


@cli.command()
def up(
    host: str = "127.0.0.1",
    port: int = 8000,
    data_dir: DataDir = Path(".taas"),
) -> None:
    """Upgrade the database, then run the API and one worker until Ctrl-C."""
    data_dir.mkdir(parents=True, exist_ok=True)
    os.environ["TAAS_DATA_DIR"] = str(data_dir.resolve())
    _migrate(data_dir)
    _announce_admin_token(data_dir)
    env = _env(data_dir)
    api = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "app.main:create_app",
            "--factory",
            "--host",
            host,
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
    )
    worker = subprocess.Popen([sys.executable, "-m", "worker", "--loglevel=WARNING"], env=env)
    console.print(f"taas is up: http://{host}:{port}/docs  (data in {data_dir.resolve()})")

    def shut_down(*_: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, shut_down)
    code = 0
    try:
        while api.poll() is None and worker.poll() is None:
            time.sleep(0.2)
        code = 1  # one of them died on its own
    except KeyboardInterrupt:
        pass
    finally:
        for process in (api, worker):
            if process.poll() is None:
                process.terminate()
        for process in (api, worker):
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
    raise typer.Exit(code)


def _announce_admin_token(data_dir: Path) -> None:
    """Make the admin token (and the keys' secret) before the API starts; print a new
    token once. The `taas` command finds it in the data dir."""
    from app.keys.service import admin_token_path, server_secrets

    settings = Settings(data_dir=data_dir)
    if settings.admin_token is not None:
        return
    path = admin_token_path(data_dir)
    new = not path.exists()
    token = server_secrets(settings).admin_token
    if new:
        console.print(f"admin token (shown once; kept in {path}): {token}")


@cli.command()
def api(host: str = "127.0.0.1", port: int = 8000, workers: int = 1) -> None:
    """Run the API alone (the full stack runs workers separately)."""
    import uvicorn

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
def token() -> None:
    """Print the admin token: TAAS_ADMIN_TOKEN, else the one kept in the data dir (made
    there now if the API has not made it yet). In compose: `docker compose exec api taas token`."""
    from app.keys.service import server_secrets

    typer.echo(server_secrets(Settings()).admin_token)


def _client(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, timeout=60, headers=_auth_headers())


def _check(response: httpx.Response) -> Any:
    if response.is_success:
        return response.json()
    try:
        error = response.json()["error"]
        console.print(f"[red]{response.status_code} {error['code']}[/red]: {error['message']}")
    except (ValueError, KeyError, TypeError):
        console.print(f"[red]{response.status_code}[/red]: {response.text[:500]}")
    raise typer.Exit(1)


@cli.command()
def submit(
    spec: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="A job spec, JSON.")],
    follow_: Annotated[
        bool, typer.Option("--follow", help="Stream the job until it ends.")
    ] = False,
    dataset: Annotated[str | None, typer.Option(help="Use this dataset id instead.")] = None,
    url: Url = DEFAULT_URL,
) -> None:
    """Submit a training job."""
    body = json.loads(spec.read_text())
    if dataset is not None:
        body["dataset"] = dataset
    with _client(url) as client:
        job = _check(client.post("/v1/jobs", json=body))
    console.print(f"submitted {job['id']} ({job['params']:,} parameters)")
    if follow_:
        follow(job["id"], url=url)


@cli.command()
def follow(job_id: str, after: int = 0, url: Url = DEFAULT_URL) -> None:
    """Stream a job's events with a progress bar until it ends (reconnects on drops)."""
    with _client(url) as client:
        job = _check(client.get(f"/v1/jobs/{job_id}"))
    epochs = job["spec"]["training"]["epochs"]
    ws_url = url.replace("http", "ws", 1) + f"/v1/jobs/{job_id}/stream"
    status = job["status"]
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task("epochs", total=epochs)
        deadline = time.monotonic() + RECONNECT_S
        while status not in TERMINAL and time.monotonic() < deadline:
            try:
                with connect(
                    f"{ws_url}?after={after}", additional_headers=_auth_headers()
                ) as socket:
                    for raw in socket:
                        event = json.loads(raw)
                        after = event["seq"]
                        status = _show(event, progress, bar) or status
                        deadline = time.monotonic() + RECONNECT_S
            except (ConnectionClosed, OSError):
                time.sleep(1)
    with _client(url) as client:
        job = _check(client.get(f"/v1/jobs/{job_id}"))
    console.print_json(
        data={
            "status": job["status"],
            "reason": job["reason"],
            "result": job["result"],
            "timings": job["timings"],
        }
    )
    raise typer.Exit(0 if job["status"] == "succeeded" else 1)


def _show(event: dict[str, Any], progress: Progress, bar: Any) -> str | None:
    data = event["data"]
    if event["type"] == "status":
        progress.console.print(f"[bold]{data['status']}[/bold] ({data.get('reason')})")
        return str(data["status"])
    if event["type"] == "metric" and data.get("scope") == "epoch":
        shown = ", ".join(f"{k} {v:.4g}" for k, v in data.items() if isinstance(v, float))
        progress.console.print(f"epoch {data['epoch']}: {shown}")
        progress.update(bar, completed=data["epoch"])
    elif event["type"] == "metric":
        progress.update(bar, description=f"epochs (loss {data['train_loss']:.4f})")
    elif event["type"] == "log":
        progress.console.print(f"[dim]{data.get('message')}[/dim]")
    return None


@cli.command()
def status(job_id: str, url: Url = DEFAULT_URL) -> None:
    """Show a job: status, result and timings."""
    with _client(url) as client:
        console.print_json(data=_check(client.get(f"/v1/jobs/{job_id}")))


@cli.command()
def cancel(job_id: str, url: Url = DEFAULT_URL) -> None:
    """Cancel a queued or running job."""
    with _client(url) as client:
        job = _check(client.post(f"/v1/jobs/{job_id}/cancel"))
    console.print(
        f"{job['id']}: {job['status']}" + (" (stopping)" if job["cancel_requested"] else "")
    )


@datasets_cli.command("upload")
def datasets_upload(
    file: Annotated[
        Path | None,
        typer.Argument(exists=True, dir_okay=False, help="An .npz (x, y) or .csv file."),
    ] = None,
    images: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="IDX images file.")
    ] = None,
    labels: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="IDX labels file.")
    ] = None,
    name: str = "dataset",
    task: Annotated[str, typer.Option(help="classification or regression.")] = "classification",
    label_column: Annotated[
        str | None, typer.Option(help="csv: the label's column name, or index without header.")
    ] = None,
    header: Annotated[bool, typer.Option(help="csv: the first row names the columns.")] = True,
    url: Url = DEFAULT_URL,
) -> None:
    """Upload a dataset: FILE (.npz or .csv), or --images and --labels (IDX); prints it."""
    form: dict[str, str] = {"name": name, "task": task}
    with contextlib.ExitStack() as files_open, _client(url) as client:
        if file is None:
            if images is None or labels is None:
                console.print("[red]give FILE, or both --images and --labels[/red]")
                raise typer.Exit(2)
            form["format"] = "idx"
            files = {
                "images": (images.name, files_open.enter_context(images.open("rb"))),
                "labels": (labels.name, files_open.enter_context(labels.open("rb"))),
            }
        else:
            form["format"] = "csv" if file.suffix.lower() == ".csv" else "npz"
            if form["format"] == "csv":
                form["header"] = str(header).lower()
                if label_column is not None:
                    form["label_column"] = label_column
            files = {"file": (file.name, files_open.enter_context(file.open("rb")))}
        dataset = _check(client.post("/v1/datasets", data=form, files=files))
    console.print_json(data=dataset)


@datasets_cli.command("delete")
def datasets_delete(dataset_id: str, url: Url = DEFAULT_URL) -> None:
    """Delete a dataset no queued or running job uses."""
    with _client(url) as client:
        response = client.delete(f"/v1/datasets/{dataset_id}")
        if response.status_code != 204:
            _check(response)
    console.print(f"deleted {dataset_id}")


@datasets_cli.command("list")
def datasets_list(url: Url = DEFAULT_URL) -> None:
    """List uploaded datasets."""
    with _client(url) as client:
        console.print_json(data=_check(client.get("/v1/datasets")))


@cli.command()
def resume(job_id: str, epochs: int, url: Url = DEFAULT_URL) -> None:
    """Continue a finished job from its newest checkpoint for EPOCHS more; prints the new job."""
    with _client(url) as client:
        job = _check(client.post(f"/v1/jobs/{job_id}/resume", json={"epochs": epochs}))
    console.print(f"submitted {job['id']} (resumes {job_id})")


@cli.command()
def model(
    job_id: str,
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write it.")] = Path(
        "model.safetensors"
    ),
    url: Url = DEFAULT_URL,
) -> None:
    """Download a finished job's final weights (safetensors)."""
    _download(f"/v1/jobs/{job_id}/model", output, url)


def _download(path: str, output: Path, url: str) -> None:
    with _client(url) as client, client.stream("GET", path) as response:
        if not response.is_success:
            response.read()
            _check(response)
        with output.open("wb") as file:
            for chunk in response.iter_bytes():
                file.write(chunk)
    console.print(f"wrote {output} (sha256 {response.headers.get('x-checksum-sha256')})")


@checkpoints_cli.command("upload")
def checkpoints_upload(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="A .safetensors file.")],
    name: str = "weights",
    url: Url = DEFAULT_URL,
) -> None:
    """Upload your own weights (safetensors only); prints the checkpoint and its tensors."""
    with _client(url) as client, file.open("rb") as weights:
        checkpoint = _check(
            client.post(
                "/v1/checkpoints", data={"name": name}, files={"file": (file.name, weights)}
            )
        )
    console.print_json(data=checkpoint)


@checkpoints_cli.command("list")
def checkpoints_list(
    job: Annotated[str | None, typer.Option(help="Only this job's.")] = None, url: Url = DEFAULT_URL
) -> None:
    """List checkpoints, newest first."""
    with _client(url) as client:
        params = {"job_id": job} if job else {}
        console.print_json(data=_check(client.get("/v1/checkpoints", params=params)))


@checkpoints_cli.command("download")
def checkpoints_download(
    checkpoint_id: str,
    output: Annotated[Path, typer.Option("--output", "-o")] = Path("checkpoint.safetensors"),
    url: Url = DEFAULT_URL,
) -> None:
    """Download a checkpoint's weights (safetensors)."""
    _download(f"/v1/checkpoints/{checkpoint_id}/download", output, url)


@keys_cli.command("create")
def keys_create(
    tenant: str,
    name: Annotated[str, typer.Option(help="What the key is for.")] = "key",
    url: Url = DEFAULT_URL,
) -> None:
    """Create a key for TENANT (admin token only); prints it, the only time it is shown."""
    with _client(url) as client:
        key = _check(client.post("/v1/keys", json={"tenant": tenant, "name": name}))
    console.print_json(data=key)


@keys_cli.command("list")
def keys_list(url: Url = DEFAULT_URL) -> None:
    """List keys (the admin sees every tenant's), without the keys themselves."""
    with _client(url) as client:
        console.print_json(data=_check(client.get("/v1/keys")))


@keys_cli.command("revoke")
def keys_revoke(key_id: str, url: Url = DEFAULT_URL) -> None:
    """Revoke a key: refused from the next request on."""
    with _client(url) as client:
        response = client.delete(f"/v1/keys/{key_id}")
        if response.status_code != 204:
            _check(response)
    console.print(f"revoked {key_id}")


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
