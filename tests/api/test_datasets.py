"""The datasets API: IDX, npz and csv uploads for classification and regression (real MNIST
and tiny hand-made files), every bad upload answered with a 4xx that leaves no row and no file
behind, jobs on an uploaded dataset, and deleting one."""

import copy
import gzip
import io
import re
import struct
import zipfile
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
from tests.client import error_of, upload_mnist
from tests.conftest import ADMIN_HEADERS, MNIST

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


def stored_files(settings: Settings) -> list[Path]:
    root = settings.artifacts_dir / "datasets"
    return sorted(root.rglob("*")) if root.exists() else []


def assert_nothing_stored(client: TestClient, settings: Settings) -> None:
    listing = client.get("/v1/datasets").json()
    assert (listing["items"], listing["next_cursor"]) == ([], None)
    assert stored_files(settings) == []


def job_on(dataset_id: str) -> dict[str, Any]:
    spec = copy.deepcopy(SEED_JOB_EXAMPLE)
    spec["dataset"] = dataset_id
    return spec


# --- real MNIST ---------------------------------------------------------------------------


@pytest.fixture
def mnist(client: TestClient) -> dict[str, Any]:
    """The MNIST test split, uploaded as gzip IDX files."""
    return upload_mnist(client)


@needs_mnist
def test_upload_returns_201_with_shape_classes_and_size_when_files_are_mnist(
    mnist: dict[str, Any], settings: Settings
) -> None:
    assert mnist["name"] == "mnist"
    assert mnist["format"] == "idx"
    assert mnist["samples"] == MNIST_SAMPLES
    assert mnist["input_shape"] == [1, 28, 28]
    assert mnist["task"] == "classification"
    assert mnist["classes"] == 10
    assert mnist["targets"] is None
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
    assert (listed.json()["items"], listed.json()["next_cursor"]) == ([mnist], None)


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


@pytest.mark.parametrize(
    ("form", "field"),
    [
        pytest.param({"format": "npz"}, "file", id="npz-without-file"),
        pytest.param({"format": "csv"}, "file", id="csv-without-file"),
        pytest.param({"label_column": "0"}, "label_column", id="label-column-on-idx"),
        pytest.param({"header": "false"}, "header", id="header-on-idx"),
        pytest.param({"format": "parquet"}, "format", id="unknown-format"),
        pytest.param({"task": "ranking"}, "task", id="unknown-task"),
    ],
)
def test_upload_returns_422_naming_the_field_when_form_does_not_fit_the_files(
    client: TestClient, settings: Settings, form: dict[str, str], field: str
) -> None:
    images, labels = tiny_pair()

    error = error_of(upload(client, images, labels, **form), 422)

    assert field in [d["field"] for d in error["details"]]
    assert_nothing_stored(client, settings)


def test_upload_returns_422_naming_images_when_an_idx_upload_sends_file(
    client: TestClient, settings: Settings
) -> None:
    error = error_of(send_file(client, npz_bytes(), format="idx"), 422)

    assert [d["field"] for d in error["details"]] == ["images"]
    assert_nothing_stored(client, settings)


@pytest.fixture
def small_limit_client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(
        create_app(settings.model_copy(update={"max_upload_bytes": 1000})), headers=ADMIN_HEADERS
    ) as client:
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


# --- npz and csv uploads ------------------------------------------------------------------

FEATURES = 4
SAMPLES = 24
CLASSES = 3


def npz_bytes(**arrays: Any) -> bytes:
    """An npz of `SAMPLES` 4-feature float32 rows and 3 classes, overridden by `arrays`."""
    rng = np.random.default_rng(0)
    defaults = {
        "x": rng.standard_normal((SAMPLES, FEATURES)).astype(np.float32),
        "y": np.arange(SAMPLES) % CLASSES,
    }
    buffer = io.BytesIO()
    np.savez(buffer, **{**defaults, **arrays})
    return buffer.getvalue()


def csv_text(rows: int = SAMPLES, header: bool = True) -> str:
    """Iris-like rows: four features with the class in the middle column, `species`."""
    lines = ["sepal_length,sepal_width,species,petal_length,petal_width"] if header else []
    for i in range(rows):
        lines.append(f"{5 + i / 10:.1f},{3 + i % 5 / 10:.1f},{i % CLASSES},1.{i % 9},0.{i % 7}")
    return "\n".join(lines) + "\n"


def send_file(
    client: TestClient, data: bytes | str, *, format: str = "npz", **form: str
) -> httpx2.Response:
    content = data.encode() if isinstance(data, str) else data
    return client.post(
        "/v1/datasets",
        files={"file": (f"data.{format}", content, "application/octet-stream")},
        data={"format": format, "name": "ds", **form},
    )


def created(response: httpx2.Response) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    dataset: dict[str, Any] = response.json()
    return dataset


def test_upload_returns_201_with_classes_when_npz_is_for_classification(
    client: TestClient, settings: Settings
) -> None:
    dataset = created(send_file(client, npz_bytes()))

    assert dataset["format"] == "npz"
    assert dataset["task"] == "classification"
    assert dataset["classes"] == CLASSES
    assert dataset["targets"] is None
    assert dataset["samples"] == SAMPLES
    assert dataset["input_shape"] == [FEATURES]
    assert dataset["bytes"] == SAMPLES * FEATURES * 4 + SAMPLES * 8
    assert client.get(f"/v1/datasets/{dataset['id']}").json() == dataset
    stored = np.load(settings.artifacts_dir / "datasets" / dataset["id"] / "y.npy")
    assert stored.dtype == np.int64


def test_upload_keeps_uint8_images_when_npz_holds_them(client: TestClient) -> None:
    images = np.zeros((SAMPLES, 1, 5, 5), np.uint8)

    dataset = created(send_file(client, npz_bytes(x=images)))

    assert dataset["input_shape"] == [1, 5, 5]
    assert dataset["bytes"] == SAMPLES * 25 + SAMPLES * 8


@pytest.mark.parametrize(("y_shape", "targets"), [((SAMPLES,), 1), ((SAMPLES, 3), 3)])
def test_upload_returns_201_with_targets_when_npz_is_for_regression(
    client: TestClient, settings: Settings, y_shape: tuple[int, ...], targets: int
) -> None:
    y = np.linspace(-1, 1, num=int(np.prod(y_shape))).reshape(y_shape)

    dataset = created(send_file(client, npz_bytes(y=y), task="regression"))

    assert dataset["task"] == "regression"
    assert dataset["classes"] is None
    assert dataset["targets"] == targets
    assert dataset["input_shape"] == [FEATURES]
    assert dataset["bytes"] == SAMPLES * FEATURES * 4 + int(np.prod(y_shape)) * 4
    stored = np.load(settings.artifacts_dir / "datasets" / dataset["id"] / "y.npy")
    assert stored.dtype == np.float32
    assert stored.shape == y_shape


def test_upload_returns_201_when_csv_has_a_header_and_label_column_is_a_name(
    client: TestClient, settings: Settings
) -> None:
    dataset = created(send_file(client, csv_text(), format="csv", label_column="species"))

    assert dataset["format"] == "csv"
    assert dataset["samples"] == SAMPLES
    assert dataset["input_shape"] == [4]
    assert dataset["classes"] == CLASSES
    folder = settings.artifacts_dir / "datasets" / dataset["id"]
    np.testing.assert_array_equal(np.load(folder / "y.npy"), np.arange(SAMPLES) % CLASSES)
    np.testing.assert_allclose(np.load(folder / "x.npy")[1], [5.1, 3.1, 1.1, 0.1], rtol=1e-6)


def test_upload_returns_201_when_csv_has_no_header_and_label_column_is_an_index(
    client: TestClient,
) -> None:
    text = csv_text(header=False)

    dataset = created(send_file(client, text, format="csv", header="false", label_column="2"))

    assert dataset["samples"] == SAMPLES
    assert dataset["classes"] == CLASSES


def test_upload_gives_the_same_hash_when_csv_and_npz_hold_the_same_data(
    client: TestClient,
) -> None:
    x = np.array([[1.5, 2.0], [0.0, -1.0], [3.0, 4.0]], np.float32)
    y = np.array([0, 1, 1])
    text = "a,b,y\n1.5,2,0\n0,-1,1\n3,4,1\n"

    from_csv = created(send_file(client, text, format="csv"))
    from_npz = created(send_file(client, npz_bytes(x=x, y=y)))

    assert from_csv["sha256"] == from_npz["sha256"]


def test_upload_returns_201_with_one_target_when_csv_is_for_regression(
    client: TestClient,
) -> None:
    dataset = created(send_file(client, csv_text(), format="csv", task="regression"))

    assert dataset["task"] == "regression"
    assert dataset["targets"] == 1
    assert dataset["classes"] is None
    assert dataset["input_shape"] == [4]


def pickled_npz() -> bytes:
    return npz_bytes(x=np.array([{"a": 1}] * SAMPLES, dtype=object))


def npz_without(name: str) -> bytes:
    buffer = io.BytesIO()
    arrays: dict[str, Any] = {"x": np.zeros((SAMPLES, 2)), "y": np.arange(SAMPLES) % 2}
    del arrays[name]
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def with_nan(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
    array = array.astype(np.float64)
    array.flat[5] = np.nan
    return array


X_DEFAULT = np.ones((SAMPLES, FEATURES), np.float32)
Y_DEFAULT = np.arange(SAMPLES) % CLASSES


@pytest.mark.parametrize(
    ("format", "data", "form", "field", "says"),
    [
        pytest.param("npz", npz_without("x"), {}, "file", "no array 'x'", id="npz-no-x"),
        pytest.param("npz", npz_without("y"), {}, "file", "no array 'y'", id="npz-no-y"),
        pytest.param("npz", pickled_npz(), {}, "file", "Python objects", id="npz-pickled"),
        pytest.param("npz", b"not a zip", {}, "file", "not an npz", id="npz-garbage"),
        pytest.param("npz", b"", {}, "file", "empty", id="npz-empty"),
        pytest.param(
            "npz", npz_bytes(x=with_nan(X_DEFAULT)), {}, "file", "x[1, 1] is nan", id="npz-nan-x"
        ),
        pytest.param(
            "npz",
            npz_bytes(y=with_nan(Y_DEFAULT)),
            {"task": "regression"},
            "file",
            "y[5] is nan",
            id="npz-nan-y",
        ),
        pytest.param(
            "npz", npz_bytes(x=np.ones(SAMPLES)), {}, "file", "2 dimensions", id="npz-1d-x"
        ),
        pytest.param(
            "npz",
            npz_bytes(y=np.zeros((SAMPLES, 2))),
            {},
            "file",
            "1 dimension",
            id="npz-2d-labels",
        ),
        pytest.param(
            "npz", npz_bytes(y=Y_DEFAULT + 0.5), {}, "file", "not an integer", id="npz-fraction"
        ),
        pytest.param(
            "npz", npz_bytes(y=Y_DEFAULT - 1), {}, "file", "outside [0, 65535]", id="npz-negative"
        ),
        pytest.param(
            "npz", npz_bytes(y=np.zeros(SAMPLES)), {}, "file", "2 classes", id="npz-one-class"
        ),
        pytest.param(
            "npz", npz_bytes(y=Y_DEFAULT[:-1]), {}, "file", "must match", id="npz-count-mismatch"
        ),
        pytest.param(
            "npz", npz_bytes(x=X_DEFAULT[:1], y=Y_DEFAULT[:1]), {}, "file", "2 samples", id="npz-1"
        ),
        pytest.param(
            "npz", npz_bytes(x=X_DEFAULT.astype(complex)), {}, "file", "numeric", id="npz-complex"
        ),
        pytest.param(
            "npz", npz_bytes(), {"label_column": "y"}, "label_column", "csv", id="npz-label-col"
        ),
        pytest.param(
            "csv",
            csv_text().replace("5.3,3.3", "5.3,abc"),
            {},
            "file",
            "row 5, column 'sepal_width': 'abc' is not a number",
            id="csv-not-a-number",
        ),
        pytest.param(
            "csv",
            csv_text(),
            {"label_column": "class"},
            "label_column",
            "no column 'class'",
            id="csv-no-label-column",
        ),
        pytest.param(
            "csv",
            csv_text(header=False),
            {"header": "false", "label_column": "9"},
            "label_column",
            "0-based index",
            id="csv-label-index-out-of-range",
        ),
        pytest.param(
            "csv",
            csv_text().replace("5.3,3.3", "5.3,inf"),
            {},
            "file",
            "row 5, column 'sepal_width' is inf",
            id="csv-inf",
        ),
        pytest.param(
            "csv",
            csv_text().replace(",1,1.", ",1.5,1."),
            {"label_column": "species"},
            "file",
            "label 1.5 at row 3, column 'species' is not an integer",
            id="csv-fractional-label",
        ),
        pytest.param("csv", "a,b\n1,2\n3\n", {}, "file", "row 3 has 1 columns", id="csv-ragged"),
        pytest.param("csv", "a,b\n1,0\n", {}, "file", "2 samples", id="csv-one-row"),
        pytest.param("csv", b"a,b\n\xff,0\n", {}, "file", "UTF-8", id="csv-not-utf8"),
    ],
)
def test_upload_returns_422_naming_the_field_and_stores_nothing_when_file_is_bad(
    client: TestClient,
    settings: Settings,
    format: str,
    data: bytes | str,
    form: dict[str, str],
    field: str,
    says: str,
) -> None:
    error = error_of(send_file(client, data, format=format, **form), 422)

    assert error["code"] == "invalid_upload"
    assert [d["field"] for d in error["details"]] == [field]
    assert says in error["message"]
    assert_nothing_stored(client, settings)


def npz_bomb(declared_rows: int, present_bytes: int) -> bytes:
    """An x.npy member whose header declares `declared_rows` x 1000 float64 values."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (declared_rows, 1000)}
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("x.npy", "w", force_zip64=True) as member:
            member.write(header.getvalue())
            member.write(bytes(present_bytes))
        archive.writestr("y.npy", npy_bytes(np.arange(2) % 2))
    return buffer.getvalue()


def npy_bytes(array: npt.NDArray[Any]) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_upload_returns_413_without_inflating_when_npz_declares_a_huge_array(
    client: TestClient, settings: Settings
) -> None:
    bomb = npz_bomb(declared_rows=10**9, present_bytes=5_000_000)  # declares 8 TB
    assert len(bomb) < 50_000

    error = error_of(send_file(client, bomb), 413)

    assert error["code"] == "upload_too_large"
    assert "declare" in error["message"]
    assert_nothing_stored(client, settings)


def test_upload_returns_413_when_npz_arrays_inflate_past_the_limit(
    small_limit_client: TestClient, settings: Settings
) -> None:
    bomb = npz_bomb(declared_rows=2, present_bytes=16_000)  # 16 kB of zeros, honestly declared
    assert len(bomb) < 1000

    error = error_of(send_file(small_limit_client, bomb), 413)

    assert error["code"] == "upload_too_large"
    assert_nothing_stored(small_limit_client, settings)


@pytest.mark.parametrize("format", ["npz", "csv"])
def test_upload_returns_413_and_stores_nothing_when_single_file_is_over_the_limit(
    small_limit_client: TestClient, settings: Settings, format: str
) -> None:
    data = npz_bytes() if format == "npz" else csv_text(rows=100)
    assert len(data) > 1000

    error = error_of(send_file(small_limit_client, data, format=format), 413)

    assert error["code"] == "upload_too_large"
    assert_nothing_stored(small_limit_client, settings)


# --- deleting -----------------------------------------------------------------------------


def job_spec(dataset_id: str, **training: str) -> dict[str, Any]:
    return {
        "name": "uses-the-dataset",
        "dataset": dataset_id,
        "model": {"layers": [{"type": "linear", "out_features": CLASSES}]},
        "optimizer": {"name": "sgd", "lr": 0.1},
        "training": {"epochs": 1, "batch_size": 8, **training},
    }


@pytest.fixture
def tabular(client: TestClient) -> dict[str, Any]:
    """A classification dataset of 4 features and 3 classes."""
    return created(send_file(client, npz_bytes()))


def submitted(client: TestClient, dataset_id: str, **training: str) -> dict[str, Any]:
    response = client.post("/v1/jobs", json=job_spec(dataset_id, **training))
    assert response.status_code == 201, response.text
    job: dict[str, Any] = response.json()
    return job


def test_delete_returns_204_and_removes_row_and_files(
    client: TestClient, settings: Settings, backend: str, tabular: dict[str, Any]
) -> None:
    assert stored_files(settings) != []

    response = client.delete(f"/v1/datasets/{tabular['id']}")

    assert response.status_code == 204
    assert response.content == b""
    assert error_of(client.get(f"/v1/datasets/{tabular['id']}"), 404)["code"] == (
        "dataset_not_found"
    )
    assert_nothing_stored(client, settings)


def test_delete_returns_404_dataset_not_found_when_dataset_is_unknown(
    client: TestClient,
) -> None:
    error = error_of(client.delete("/v1/datasets/ds_unknown"), 404)

    assert error["code"] == "dataset_not_found"


def test_delete_returns_409_and_keeps_everything_while_a_queued_job_uses_the_dataset(
    client: TestClient, settings: Settings, backend: str, tabular: dict[str, Any]
) -> None:
    job = submitted(client, tabular["id"])
    files = stored_files(settings)

    error = error_of(client.delete(f"/v1/datasets/{tabular['id']}"), 409)

    assert error["code"] == "dataset_in_use"
    assert job["id"] in error["message"]
    assert client.get(f"/v1/datasets/{tabular['id']}").json() == tabular
    assert stored_files(settings) == files


def test_delete_returns_409_while_a_queued_job_validates_on_the_dataset(
    client: TestClient, backend: str, tabular: dict[str, Any]
) -> None:
    validation = created(send_file(client, npz_bytes()))
    job = submitted(client, tabular["id"], val_dataset=validation["id"])

    error = error_of(client.delete(f"/v1/datasets/{validation['id']}"), 409)

    assert error["code"] == "dataset_in_use"
    assert job["id"] in error["message"]
    assert client.get(f"/v1/datasets/{validation['id']}").status_code == 200


def test_delete_returns_204_and_keeps_the_job_when_its_job_was_cancelled(
    client: TestClient, settings: Settings, backend: str, tabular: dict[str, Any]
) -> None:
    job = submitted(client, tabular["id"])
    assert client.post(f"/v1/jobs/{job['id']}/cancel").status_code == 202

    response = client.delete(f"/v1/datasets/{tabular['id']}")

    assert response.status_code == 204
    kept = client.get(f"/v1/jobs/{job['id']}")
    assert kept.status_code == 200
    assert kept.json()["status"] == "cancelled"
    assert kept.json()["dataset_id"] is None
    assert kept.json()["spec"]["dataset"] == tabular["id"]
    assert_nothing_stored(client, settings)


def test_list_names_the_builtin_synthetic_dataset_with_its_options(client: TestClient) -> None:
    listing = client.get("/v1/datasets").json()

    synthetic = listing["builtin"]["synthetic"]
    assert synthetic["task"] == "classification"
    assert {"samples", "classes", "targets", "input_shape", "seed"} <= set(synthetic)
