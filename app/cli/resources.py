"""Client commands about stored things: datasets, checkpoints and keys."""

from pathlib import Path
from typing import Annotated

import typer

from app.cli.app import Token, Url, checkpoints_cli, connect, console, datasets_cli, keys_cli
from app.cli.errors import CliError

Label = Annotated[
    str | None, typer.Option(help="csv: the label's column name, or index without header.")
]


def _existing(path: Path, what: str) -> Path:
    if not path.is_file():
        raise CliError(f"{path}: no such file ({what})")
    return path


@datasets_cli.command("upload")
def datasets_upload(
    file: Annotated[Path | None, typer.Argument(help="An .npz (x, y) or .csv file.")] = None,
    images: Annotated[Path | None, typer.Option(help="IDX images file.")] = None,
    labels: Annotated[Path | None, typer.Option(help="IDX labels file.")] = None,
    name: str = "dataset",
    task: Annotated[str, typer.Option(help="classification or regression.")] = "classification",
    label_column: Label = None,
    header: Annotated[bool, typer.Option(help="csv: the first row names the columns.")] = True,
    url: Url = None,
    token: Token = None,
) -> None:
    """Upload a dataset: FILE (.npz or .csv), or --images and --labels (IDX); prints it."""
    form: dict[str, str] = {"name": name, "task": task}
    if file is None:
        if images is None or labels is None:
            raise CliError("give FILE (.npz or .csv), or both --images and --labels (IDX)")
        form["format"] = "idx"
        files = {"images": _existing(images, "--images"), "labels": _existing(labels, "--labels")}
    else:
        form["format"] = "csv" if file.suffix.lower() == ".csv" else "npz"
        if form["format"] == "csv":
            form["header"] = str(header).lower()
            if label_column is not None:
                form["label_column"] = label_column
        files = {"file": _existing(file, "FILE")}
    with connect(url, token) as client:
        console.print_json(data=client.upload("/v1/datasets", form, files))


@datasets_cli.command("delete")
def datasets_delete(dataset_id: str, url: Url = None, token: Token = None) -> None:
    """Delete a dataset no queued or running job uses."""
    with connect(url, token) as client:
        client.delete(f"/v1/datasets/{dataset_id}")
    console.print(f"deleted {dataset_id}")


@datasets_cli.command("list")
def datasets_list(url: Url = None, token: Token = None) -> None:
    """List uploaded datasets."""
    with connect(url, token) as client:
        console.print_json(data=client.get("/v1/datasets"))


@checkpoints_cli.command("upload")
def checkpoints_upload(
    file: Annotated[Path, typer.Argument(help="A .safetensors file.")],
    name: str = "weights",
    url: Url = None,
    token: Token = None,
) -> None:
    """Upload your own weights (safetensors only); prints the checkpoint and its tensors."""
    with connect(url, token) as client:
        checkpoint = client.upload(
            "/v1/checkpoints", {"name": name}, {"file": _existing(file, "FILE")}
        )
    console.print_json(data=checkpoint)


@checkpoints_cli.command("list")
def checkpoints_list(
    job: Annotated[str | None, typer.Option(help="Only this job's.")] = None,
    url: Url = None,
    token: Token = None,
) -> None:
    """List checkpoints, newest first."""
    with connect(url, token) as client:
        console.print_json(data=client.get("/v1/checkpoints", job_id=job))


@checkpoints_cli.command("download")
def checkpoints_download(
    checkpoint_id: str,
    output: Annotated[Path, typer.Option("--output", "-o")] = Path("checkpoint.safetensors"),
    url: Url = None,
    token: Token = None,
) -> None:
    """Download a checkpoint's weights (safetensors)."""
    with connect(url, token) as client:
        checksum = client.download(f"/v1/checkpoints/{checkpoint_id}/download", output)
    console.print(f"wrote {output} (sha256 {checksum})")


@keys_cli.command("create")
def keys_create(
    tenant: str,
    name: Annotated[str, typer.Option(help="What the key is for.")] = "key",
    url: Url = None,
    token: Token = None,
) -> None:
    """Create a key for TENANT (admin token only); prints it, the only time it is shown."""
    with connect(url, token) as client:
        console.print_json(data=client.post("/v1/keys", {"tenant": tenant, "name": name}))


@keys_cli.command("list")
def keys_list(url: Url = None, token: Token = None) -> None:
    """List keys (the admin sees every tenant's), without the keys themselves."""
    with connect(url, token) as client:
        console.print_json(data=client.get("/v1/keys"))


@keys_cli.command("revoke")
def keys_revoke(key_id: str, url: Url = None, token: Token = None) -> None:
    """Revoke a key: refused from the next request on."""
    with connect(url, token) as client:
        client.delete(f"/v1/keys/{key_id}")
    console.print(f"revoked {key_id}")
