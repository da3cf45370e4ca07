"""The datasets API: IDX uploads (real MNIST and tiny hand-made pairs), every bad upload
answered with a 4xx that leaves no row and no file behind, and jobs on an uploaded dataset."""

import copy
import gzip
import re
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2
import numpy as np
import numpy.typing as npt
import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from app.spec.schemas import SEED_JOB_EXAMPLE
from tests.conftest import MNIST

MNIST_IMAGES = MNIST / "t10k-images-idx3-ubyte.gz"
MNIST_LABELS = MNIST / "t10k-labels-idx1-ubyte.gz"
needs_mnist = pytest.mark.skipif(
    not (MNIST_IMAGES.is_file() and MNIST_LABELS.is_file()), reason=f"no MNIST files in {MNIST}"
)

MNIST_SAMPLES = 10_000
# Stored as the upload's uint8 pixels, (N, 1, 28, 28), plus int64 class indices.
MNIST_BYTES = MNIST_SAMPLES * 28 * 28 * 1 + MNIST_SAMPLES * 8  # 7,920,000
SHA256 = re.compile(r"^[0-9a-f]{64}$")
UBYTE = 0x08
TINY_SAMPLES = 20

Files = tuple[bytes | None, bytes | None]


def idx_bytes(array: npt.NDArray[np.uint8]) -> bytes:
    """An IDX file of unsigned bytes: magic, big-endian dimensions, then the data."""
    header = bytes([0, 0, UBYTE, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def tiny_pair(samples: int = TINY_SAMPLES) -> tuple[bytes, bytes]:
    """A valid (images, labels) IDX pair: `samples` 4x4 images of 3 classes."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(samples, 4, 4), dtype=np.uint8)
    labels = (np.arange(samples) % 3).astype(np.uint8)
    return idx_bytes(images), idx_bytes(labels)


def upload(
    client: TestClient,
    images: bytes | None,
    labels: bytes | None,
    **form: str,
) -> httpx2.Response:
    files = {}
    if images is not None:
        files["images"] = ("images-idx3-ubyte", images, "application/octet-stream")
    if labels is not None:
        files["labels"] = ("labels-idx1-ubyte", labels, "application/octet-stream")
    return client.post("/v1/datasets", files=files, data={"format": "idx", "name": "ds", **form})


def error_of(response: httpx2.Response, status_code: int) -> dict[str, Any]:
    assert response.status_code == status_code, response.text
    body = response.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert set(error) == {"code", "message", "details"}
    return error


def stored_files(settings: Settings) -> list[Path]:
    root = settings.artifacts_dir / "datasets"
    return sorted(root.rglob("*")) if root.exists() else []


def assert_nothing_stored(client: TestClient, settings: Settings) -> None:
    assert client.get("/v1/datasets").json() == {"items": [], "next_cursor": None}
    assert stored_files(settings) == []


def job_on(dataset_id: str) -> dict[str, Any]:
    spec = copy.deepcopy(SEED_JOB_EXAMPLE)
    spec["dataset"] = dataset_id
    return spec


# --- real MNIST ---------------------------------------------------------------------------


@pytest.fixture
def mnist(client: TestClient) -> dict[str, Any]:
    """The MNIST test split, uploaded as gzip IDX files."""
    response = client.post(
        "/v1/datasets",
        files={
            "images": (MNIST_IMAGES.name, MNIST_IMAGES.read_bytes(), "application/gzip"),
            "labels": (MNIST_LABELS.name, MNIST_LABELS.read_bytes(), "application/gzip"),
        },
        data={"format": "idx", "name": "mnist"},
    )
    assert response.status_code == 201, response.text
    dataset: dict[str, Any] = response.json()
    return dataset


@needs_mnist
def test_upload_returns_201_with_shape_classes_and_size_when_files_are_mnist(
    mnist: dict[str, Any], settings: Settings
) -> None:
    assert mnist["name"] == "mnist"
    assert mnist["format"] == "idx"
    assert mnist["samples"] == MNIST_SAMPLES
    assert mnist["input_shape"] == [1, 28, 28]
    assert mnist["classes"] == 10
    assert mnist["bytes"] == MNIST_BYTES == 7_920_000
    assert SHA256.match(mnist["sha256"])
    assert mnist["id"].startswith("ds_")
    stored = [path.name for path in stored_files(settings) if path.is_file()]
    assert sorted(stored) == ["x.npy", "y.npy"]


@needs_mnist
def test_get_and_list_return_the_uploaded_dataset(
    client: TestClient, mnist: dict[str, Any]
) -> None:
    got = client.get(f"/v1/datasets/{mnist['id']}")
    listed = client.get("/v1/datasets")

    assert got.status_code == 200
    assert got.json() == mnist
    assert listed.status_code == 200
    assert listed.json() == {"items": [mnist], "next_cursor": None}


@needs_mnist
def test_submit_returns_201_with_8070_params_when_job_names_the_mnist_dataset(
    client: TestClient, mnist: dict[str, Any]
) -> None:
    response = client.post("/v1/jobs", json=job_on(mnist["id"]))

    assert response.status_code == 201, response.text
    job = response.json()
    assert job["dataset_id"] == mnist["id"]
    assert job["params"] == 8070
    assert job["spec"]["dataset"] == mnist["id"]


@needs_mnist
def test_submit_returns_422_naming_the_last_layer_when_its_width_is_not_the_mnist_classes(
    client: TestClient, mnist: dict[str, Any]
) -> None:
    spec = job_on(mnist["id"])
    spec["model"]["layers"][3]["out_features"] = 4

    error = error_of(client.post("/v1/jobs", json=spec), 422)

    assert error["code"] == "invalid_spec"
    assert [d["field"] for d in error["details"]] == ["model.layers[3].out_features"]
    assert client.get("/v1/jobs").json()["items"] == []


# --- tiny uploads -------------------------------------------------------------------------


def test_upload_returns_201_when_pair_is_a_tiny_raw_idx(client: TestClient) -> None:
    images, labels = tiny_pair()

    response = upload(client, images, labels, name="tiny")

    assert response.status_code == 201, response.text
    dataset = response.json()
    assert dataset["samples"] == TINY_SAMPLES
    assert dataset["input_shape"] == [1, 4, 4]
    assert dataset["classes"] == 3
    assert dataset["bytes"] == TINY_SAMPLES * 16 + TINY_SAMPLES * 8


def test_upload_gives_the_same_hash_when_files_are_gzipped(client: TestClient) -> None:
    images, labels = tiny_pair()

    raw = upload(client, images, labels)
    gzipped = upload(client, gzip.compress(images), gzip.compress(labels))

    assert raw.status_code == gzipped.status_code == 201
    assert raw.json()["sha256"] == gzipped.json()["sha256"]
    assert raw.json()["id"] != gzipped.json()["id"]


def test_list_pages_datasets_newest_first(client: TestClient) -> None:
    images, labels = tiny_pair()
    ids = [upload(client, images, labels, name=f"ds-{i}").json()["id"] for i in range(3)]

    first = client.get("/v1/datasets", params={"limit": 2}).json()
    rest = client.get("/v1/datasets", params={"limit": 2, "cursor": first["next_cursor"]}).json()

    assert [d["id"] for d in first["items"]] == ids[:0:-1]
    assert [d["id"] for d in rest["items"]] == [ids[0]]
    assert rest["next_cursor"] is None


def _images_garbage() -> Files:
    return b"this is not an IDX file at all", tiny_pair()[1]


def _one_label_too_few() -> Files:
    images, _ = tiny_pair()
    _, labels = tiny_pair(TINY_SAMPLES - 1)
    return images, labels


def _labels_truncated() -> Files:
    images, labels = tiny_pair()
    return images, labels[:-1]


def _labels_corrupt_gzip() -> Files:
    images, labels = tiny_pair()
    return images, gzip.compress(labels)[:-8]


def _labels_missing() -> Files:
    return tiny_pair()[0], None


def _images_missing() -> Files:
    return None, tiny_pair()[1]


def _one_class() -> Files:
    images, _ = tiny_pair()
    return images, idx_bytes(np.zeros(TINY_SAMPLES, dtype=np.uint8))


@pytest.mark.parametrize(
    ("files", "field"),
    [
        pytest.param(_images_garbage, "images", id="images-garbage"),
        pytest.param(_one_label_too_few, "labels", id="one-label-too-few"),
        pytest.param(_labels_truncated, "labels", id="labels-truncated"),
        pytest.param(_labels_corrupt_gzip, "labels", id="labels-corrupt-gzip"),
        pytest.param(_labels_missing, "labels", id="labels-missing"),
        pytest.param(_images_missing, "images", id="images-missing"),
        pytest.param(_one_class, "labels", id="one-class"),
    ],
)
def test_upload_returns_422_naming_the_file_and_stores_nothing_when_upload_is_malformed(
    client: TestClient,
    settings: Settings,
    files: Callable[[], Files],
    field: str,
) -> None:
    images, labels = files()

    error = error_of(upload(client, images, labels), 422)

    assert field in [d["field"] for d in error["details"]]
    assert_nothing_stored(client, settings)


def test_upload_returns_422_and_stores_nothing_when_format_is_npz(
    client: TestClient, settings: Settings
) -> None:
    images, labels = tiny_pair()

    error = error_of(upload(client, images, labels, format="npz"), 422)

    assert [d["field"] for d in error["details"]] == ["format"]
    assert_nothing_stored(client, settings)


@pytest.fixture
def small_limit_client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings.model_copy(update={"max_upload_bytes": 1000}))) as client:
        yield client


def test_upload_returns_413_and_stores_nothing_when_a_file_is_over_the_limit(
    small_limit_client: TestClient, settings: Settings
) -> None:
    images, labels = tiny_pair(samples=100)  # 100 x 16 pixels + header: over 1000 bytes
    assert len(images) > 1000 > len(labels)

    error = error_of(upload(small_limit_client, images, labels), 413)

    assert error["code"] == "upload_too_large"
    assert_nothing_stored(small_limit_client, settings)


def test_upload_returns_413_and_stores_nothing_when_gzip_inflates_past_the_limit(
    small_limit_client: TestClient, settings: Settings
) -> None:
    images = idx_bytes(np.zeros((100, 8, 8), dtype=np.uint8))  # 6,416 bytes of mostly zeros
    labels = idx_bytes((np.arange(100) % 3).astype(np.uint8))
    compressed = gzip.compress(images)
    assert len(compressed) < 1000 < len(images)

    error = error_of(upload(small_limit_client, compressed, labels), 413)

    assert error["code"] == "upload_too_large"
    assert_nothing_stored(small_limit_client, settings)


def test_get_returns_404_dataset_not_found_when_dataset_is_unknown(client: TestClient) -> None:
    error = error_of(client.get("/v1/datasets/ds_unknown"), 404)

    assert error["code"] == "dataset_not_found"
