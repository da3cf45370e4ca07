"""`taas datasets fetch`: pinned sums, a cache in the data dir, a folder or URL mirror."""

import functools
import io
import json
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from app.cli.fetch import CATALOG, CIFAR_BATCHES, CIFAR_RECORD, cifar_npz, sha256_of
from tests.cli.conftest import Taas
from tests.conftest import ADMIN_TOKEN, MNIST

pytestmark = pytest.mark.skipif(not MNIST.is_dir(), reason="needs ../shared/datasets/mnist")


def fetch(
    taas: Taas, api_url: str, data_dir: Path, mirror: str, *args: str
) -> subprocess.CompletedProcess[str]:
    return taas(
        "datasets",
        "fetch",
        "mnist",
        "--split",
        "test",
        *args,
        "--url",
        api_url,
        "--token",
        ADMIN_TOKEN,
        TAAS_DATASET_MIRROR=mirror,
        TAAS_DATA_DIR=str(data_dir),
    )


def test_the_pinned_sums_are_those_of_the_shared_mnist_files() -> None:
    for remote in CATALOG["mnist"].splits["test"]:
        assert sha256_of(MNIST / remote.name) == remote.sha256


def test_fetch_from_a_folder_mirror_caches_the_files_and_uploads_the_dataset(
    taas: Taas, api_url: str, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"

    run = fetch(taas, api_url, data_dir, str(MNIST))

    assert run.returncode == 0, run.stderr
    dataset = json.loads(run.stdout)
    assert (dataset["name"], dataset["samples"], dataset["classes"]) == ("mnist-test", 10_000, 10)
    cached = sorted(p.name for p in (data_dir / "downloads").iterdir())
    assert cached == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    # The second fetch uses the cache: a mirror that has nothing still works.
    again = fetch(taas, api_url, data_dir, str(tmp_path / "empty"), "--name", "again")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["sha256"] == dataset["sha256"]


@pytest.fixture
def url_mirror(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real HTTP server over a folder: the URL-prefix kind of mirror."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", folder
    finally:
        server.shutdown()
        server.server_close()


def test_a_file_whose_sum_does_not_match_is_refused_and_not_kept(
    taas: Taas, api_url: str, tmp_path: Path, url_mirror: tuple[str, Path]
) -> None:
    prefix, folder = url_mirror
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(b"not mnist")
    data_dir = tmp_path / "data"

    run = fetch(taas, api_url, data_dir, prefix)

    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert "is not the pinned 8d422c7b" in lines[-1]
    assert list((data_dir / "downloads").iterdir()) == []
    datasets = taas("datasets", "list", "--url", api_url, "--token", ADMIN_TOKEN)
    assert json.loads(datasets.stdout)["items"] == []


def test_fetch_from_a_url_mirror_downloads_and_checks(
    taas: Taas, api_url: str, tmp_path: Path, url_mirror: tuple[str, Path]
) -> None:
    prefix, folder = url_mirror
    for remote in CATALOG["mnist"].splits["test"]:
        (folder / remote.name).write_bytes((MNIST / remote.name).read_bytes())

    run = fetch(taas, api_url, tmp_path / "data", prefix)

    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["samples"] == 10_000


def test_an_unknown_dataset_names_the_known_ones(taas: Taas) -> None:
    run = taas("datasets", "fetch", "imagenet")

    assert run.returncode == 1
    assert (
        run.stderr.strip()
        == "error: unknown dataset 'imagenet': fetch one of mnist, fashion-mnist, cifar10"
    )


def test_the_cifar_binary_archive_becomes_uint8_images_and_labels(tmp_path: Path) -> None:
    archive = tmp_path / "cifar-10-binary.tar.gz"
    rng = np.random.default_rng(0)
    with tarfile.open(archive, "w:gz") as tar:
        for member in CIFAR_BATCHES["train"] + CIFAR_BATCHES["test"]:
            records = rng.integers(0, 256, size=(3, CIFAR_RECORD), dtype=np.uint8)
            records[:, 0] = [1, 9, 4]
            info = tarfile.TarInfo(member)
            info.size = records.nbytes
            tar.addfile(info, io.BytesIO(records.tobytes()))

    with np.load(cifar_npz(archive, "train"), allow_pickle=False) as arrays:
        x, y = arrays["x"], arrays["y"]

    assert x.shape == (15, 3, 32, 32) and x.dtype == np.uint8
    assert y.tolist() == [1, 9, 4] * 5
