"""Client commands about jobs: submit, follow, status, cancel, resume, model."""

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect as ws_connect

from app.cli.app import Token, Url, cli, connect, console
from app.cli.errors import CliError
from app.cli.http import ApiClient
from app.jobs.status import TERMINAL, JobStatus

# How long `follow` keeps trying to reconnect to a stream that dropped.
RECONNECT_S = 30.0


def read_json(path: Path) -> Any:
    """A local JSON file, or an error naming the file (and the line and column)."""
    if not path.is_file():
        raise CliError(f"{path}: no such file")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise CliError(
            f"{path}: not valid JSON at line {error.lineno}, column {error.colno}: {error.msg}"
        ) from error
    except UnicodeDecodeError as error:
        raise CliError(f"{path}: not a text file ({error.reason})") from error


@cli.command()
def submit(
    spec: Annotated[Path, typer.Argument(help="A job spec, JSON.")],
    follow_: Annotated[
        bool, typer.Option("--follow", help="Stream the job until it ends.")
    ] = False,
    dataset: Annotated[
        str | None, typer.Option(help="Use this dataset (an id, or the name of one of yours).")
    ] = None,
    url: Url = None,
    token: Token = None,
) -> None:
    """Submit a training job; prints its id (and, with --follow, streams it)."""
    body = read_json(spec)
    if dataset is not None and not isinstance(body, dict):
        raise CliError(f"{spec}: a job spec is a JSON object")
    with connect(url, token) as client:
        if dataset is not None:
            body["dataset"] = client.dataset_id(dataset)
        job = client.post("/v1/jobs", body)
        console.print(f"submitted {job['id']} ({job['params']:,} parameters)")
        if follow_:
            _follow(client, job["id"], 0)


@cli.command()
def follow(
    job_id: str,
    after: Annotated[int, typer.Option(help="Show only events after this seq.")] = 0,
    url: Url = None,
    token: Token = None,
) -> None:
    """Stream a job's events with a progress bar until it ends (reconnects on drops); on a
    finished job, print its stored events after SEQ."""
    with connect(url, token) as client:
        _follow(client, job_id, after)


def _follow(client: ApiClient, job_id: str, after: int) -> None:
    job = client.get(f"/v1/jobs/{job_id}")
    epochs = (job.get("spec") or {}).get("training", {}).get("epochs")
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=console) as progress:
        bar = progress.add_task("epochs", total=epochs)
        if job["status"] in TERMINAL:
            # The stream would replay these too; the HTTP pages need no websocket.
            for event in client.events(job_id, after):
                _show(event, progress, bar)
        else:
            _stream(client, job_id, after, job["status"], progress, bar)
    job = client.get(f"/v1/jobs/{job_id}")
    shown = {k: job.get(k) for k in ("status", "reason", "result", "timings")}
    console.print_json(data=shown)
    raise typer.Exit(0 if job["status"] == JobStatus.SUCCEEDED else 1)


def _stream(
    client: ApiClient, job_id: str, after: int, status: str, progress: Progress, bar: Any
) -> None:
    url = f"{client.ws_url}/v1/jobs/{job_id}/stream"
    deadline = time.monotonic() + RECONNECT_S
    while status not in TERMINAL:
        if time.monotonic() > deadline:
            raise CliError(f"lost the stream of {job_id} for {RECONNECT_S:.0f} s ({url})")
        try:
            with ws_connect(f"{url}?after={after}", additional_headers=client.headers) as socket:
                for raw in socket:
                    event = json.loads(raw)
                    after = event["seq"]
                    status = _show(event, progress, bar) or status
                    deadline = time.monotonic() + RECONNECT_S
        except InvalidStatus as error:
            raise CliError(f"the stream {url} refused: {error}") from error
        except (ConnectionClosed, OSError):
            time.sleep(1)


def _show(event: dict[str, Any], progress: Progress, bar: Any) -> str | None:
    data = event["data"]
    if event["type"] == "status":
        progress.console.print(f"[bold]{data['status']}[/bold] ({data.get('reason')})")
        return str(data["status"])
    if event["type"] == "metric" and data.get("scope") == "epoch":
        shown = ", ".join(f"{k} {v:.4g}" for k, v in data.items() if isinstance(v, float))
        progress.console.print(f"epoch {data['epoch']}: {shown}")
        progress.update(bar, completed=data["epoch"])
    elif event["type"] == "metric" and "train_loss" in data:
        progress.update(bar, description=f"epochs (loss {data['train_loss']:.4f})")
    elif event["type"] == "log":
        progress.console.print(f"[dim]{data.get('message')}[/dim]")
    elif event["type"] == "checkpoint":
        saved = f"{data.get('kind')} at epoch {data.get('epoch')}"
        progress.console.print(f"[dim]checkpoint {data.get('id')} ({saved})[/dim]")
    return None


@cli.command()
def status(job_id: str, url: Url = None, token: Token = None) -> None:
    """Show a job: status, result and timings."""
    with connect(url, token) as client:
        console.print_json(data=client.get(f"/v1/jobs/{job_id}"))


@cli.command()
def cancel(job_id: str, url: Url = None, token: Token = None) -> None:
    """Cancel a queued or running job."""
    with connect(url, token) as client:
        job = client.post(f"/v1/jobs/{job_id}/cancel")
    stopping = " (stopping)" if job["cancel_requested"] else ""
    console.print(f"{job['id']}: {job['status']}{stopping}")


@cli.command()
def resume(job_id: str, epochs: int, url: Url = None, token: Token = None) -> None:
    """Continue a finished job from its newest checkpoint for EPOCHS more; prints
    `submitted NEW_ID (resumes JOB_ID)`."""
    with connect(url, token) as client:
        job = client.post(f"/v1/jobs/{job_id}/resume", {"epochs": epochs})
    console.print(f"submitted {job['id']} (resumes {job_id})")


@cli.command()
def model(
    job_id: str,
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write it.")] = Path(
        "model.safetensors"
    ),
    url: Url = None,
    token: Token = None,
) -> None:
    """Download a finished job's final weights (safetensors)."""
    with connect(url, token) as client:
        checksum = client.download(f"/v1/jobs/{job_id}/model", output)
    console.print(f"wrote {output} (sha256 {checksum})")
