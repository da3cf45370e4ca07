"""`taas datasets fetch NAME`: the datasets every tutorial uses, from their usual public
locations, checked against pinned sha256 sums, cached in the data dir and uploaded as a
normal dataset. TAAS_DATASET_MIRROR (a folder or a URL prefix holding the same file
names) serves air-gapped sites and the tests.

CIFAR-10 comes as its binary archive, read with tarfile and numpy (the "python" archive
is pickled, and nothing here unpickles) and uploaded as an .npz of uint8 images.
"""

import hashlib
import io
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import httpx
import numpy as np
import typer
from rich.console import Console

import app.cli.config as config
from app.cli.app import Token, Url, connect, console, datasets_cli
from app.cli.errors import CliError
from app.config import Settings

DOWNLOAD_TIMEOUT_S = 300.0
CHUNK_BYTES = 1 << 20
progress = Console(stderr=True)  # stdout is the uploaded dataset's JSON
CIFAR_RECORD = 1 + 3 * 32 * 32  # a label byte, then the 32x32 red, green and blue planes


@dataclass(frozen=True)
class Remote:
    name: str
    sha256: str


@dataclass(frozen=True)
class Catalogued:
    base_url: str
    kind: Literal["idx", "cifar"]
    splits: dict[str, tuple[Remote, ...]]


# Sums as the publishers' files hash (MNIST from the mirror torchvision uses, since
# yann.lecun.com refuses scripted downloads; Fashion-MNIST from Zalando's bucket).
CATALOG: dict[str, Catalogued] = {
    "mnist": Catalogued(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "idx",
        {
            "train": (
                Remote(
                    "train-images-idx3-ubyte.gz",
                    "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                ),
                Remote(
                    "train-labels-idx1-ubyte.gz",
                    "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                ),
            ),
            "test": (
                Remote(
                    "t10k-images-idx3-ubyte.gz",
                    "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                ),
                Remote(
                    "t10k-labels-idx1-ubyte.gz",
                    "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                ),
            ),
        },
    ),
    "fashion-mnist": Catalogued(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "idx",
        {
            "train": (
                Remote(
                    "train-images-idx3-ubyte.gz",
                    "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
                ),
                Remote(
                    "train-labels-idx1-ubyte.gz",
                    "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                ),
            ),
            "test": (
                Remote(
                    "t10k-images-idx3-ubyte.gz",
                    "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
                ),
                Remote(
                    "t10k-labels-idx1-ubyte.gz",
                    "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
                ),
            ),
        },
    ),
}
CIFAR10 = Remote(
    "cifar-10-binary.tar.gz", "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd"
)
CATALOG["cifar10"] = Catalogued(
    "https://www.cs.toronto.edu/~kriz/", "cifar", {"train": (CIFAR10,), "test": (CIFAR10,)}
)
CIFAR_BATCHES = {
    "train": [f"cifar-10-batches-bin/data_batch_{i}.bin" for i in range(1, 6)],
    "test": ["cifar-10-batches-bin/test_batch.bin"],
}


def cache_dir() -> Path:
    """`downloads/` in the data dir of the local `taas up` (else TAAS_DATA_DIR or .taas)."""
    kept = config.local_admin_token_file()
    data_dir = kept.parent if kept is not None else Settings().data_dir
    return data_dir / "downloads"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _copy_from(source: str, into: Path) -> None:
    if "://" not in source:
        local = Path(source)
        if not local.is_file():
            raise CliError(f"{local}: no such file in TAAS_DATASET_MIRROR")
        into.write_bytes(local.read_bytes())
        return
    try:
        with httpx.stream("GET", source, timeout=DOWNLOAD_TIMEOUT_S, follow_redirects=True) as got:
            if not got.is_success:
                raise CliError(f"{source}: the server answered {got.status_code}")
            with into.open("wb") as file:
                for chunk in got.iter_bytes(CHUNK_BYTES):
                    file.write(chunk)
    except httpx.TransportError as error:
        raise CliError(f"cannot download {source} ({type(error).__name__}): {error}") from error


def obtain(remote: Remote, base_url: str, cache: Path) -> Path:
    """The file, from the cache when its sum matches, else downloaded and checked."""
    target = cache / remote.name
    if target.is_file() and sha256_of(target) == remote.sha256:
        return target
    mirror = os.environ.get("TAAS_DATASET_MIRROR")
    prefix = mirror.rstrip("/") + "/" if mirror else base_url
    source = prefix + remote.name if "://" in prefix else str(Path(prefix) / remote.name)
    cache.mkdir(parents=True, exist_ok=True)
    partial = cache / f".{remote.name}.partial"
    progress.print(f"downloading {source}", style="dim")
    try:
        _copy_from(source, partial)
        got = sha256_of(partial)
        if got != remote.sha256:
            raise CliError(
                f"{source}: sha256 {got} is not the pinned {remote.sha256}; nothing was kept"
            )
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def cifar_npz(archive: Path, split: str) -> Path:
    """The split's images (N, 3, 32, 32) uint8 and labels as an .npz next to the archive."""
    out = archive.parent / f"cifar10-{split}.npz"
    if out.is_file():
        return out
    records = []
    with tarfile.open(archive, "r:gz") as tar:
        for member in CIFAR_BATCHES[split]:
            handle = tar.extractfile(member)
            if handle is None:
                raise CliError(f"{archive}: {member} is missing")
            records.append(np.frombuffer(handle.read(), dtype=np.uint8).reshape(-1, CIFAR_RECORD))
    table = np.concatenate(records)
    buffer = io.BytesIO()
    np.savez(buffer, x=table[:, 1:].reshape(-1, 3, 32, 32), y=table[:, 0].astype(np.int64))
    partial = out.with_suffix(".partial")
    partial.write_bytes(buffer.getvalue())
    partial.replace(out)
    return out


@datasets_cli.command("fetch")
def datasets_fetch(
    dataset: Annotated[str, typer.Argument(help=f"One of: {', '.join(CATALOG)}.")],
    split: Annotated[str, typer.Option(help="train or test.")] = "train",
    name: Annotated[str | None, typer.Option(help="Its name here (default: NAME-SPLIT).")] = None,
    url: Url = None,
    token: Token = None,
) -> None:
    """Download a well-known dataset (checked against pinned sha256 sums, cached in the
    data dir) and upload it; prints the dataset."""
    entry = CATALOG.get(dataset)
    if entry is None:
        raise CliError(f"unknown dataset {dataset!r}: fetch one of {', '.join(CATALOG)}")
    if split not in entry.splits:
        raise CliError(f"{dataset} has no split {split!r}: use train or test")
    cache = cache_dir()
    files = [obtain(remote, entry.base_url, cache) for remote in entry.splits[split]]
    form = {"name": name or f"{dataset}-{split}", "task": "classification"}
    with connect(url, token) as client:
        if entry.kind == "idx":
            uploaded = client.upload(
                "/v1/datasets", form | {"format": "idx"}, {"images": files[0], "labels": files[1]}
            )
        else:
            npz = cifar_npz(files[0], split)
            uploaded = client.upload("/v1/datasets", form | {"format": "npz"}, {"file": npz})
    console.print_json(data=uploaded)
