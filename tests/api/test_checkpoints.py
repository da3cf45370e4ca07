"""The checkpoints API: safetensors uploads from safetensors' own writers round-trip through
upload, describe and download; every malformed file, pickle, .pt file and oversized upload is
answered with a 4xx that leaves no row and no file behind; lists, pages and the job filter."""

import hashlib
import io
import json
import pickle
import struct
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx2
import numpy as np
import numpy.typing as npt
import pytest
import safetensors.numpy
import safetensors.torch
import torch
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from app.checkpoints import service
from app.config import Settings
from app.deps import Services
from app.errors import UploadTooLarge
from app.main import create_app
from app.orm import Checkpoint
from app.orm.base import utcnow
from tests.client import error_of, small_job
from tests.conftest import ADMIN_HEADERS

pytestmark = pytest.mark.usefixtures("backend")

UPLOADS = Path("checkpoints") / "uploads"
SMALL_LIMIT = 1000


# --- helpers -------------------------------------------------------------------------------


def mlp_state() -> dict[str, torch.Tensor]:
    """The seed's 784-10-10-10 MLP, named as the service names parameters: 8070 values."""
    generator = torch.Generator().manual_seed(0)
    shapes = {
        "1.weight": (10, 784),
        "1.bias": (10,),
        "2.weight": (10, 10),
        "2.bias": (10,),
        "3.weight": (10, 10),
        "3.bias": (10,),
    }
    return {name: torch.randn(shape, generator=generator) for name, shape in shapes.items()}


def torch_file(state: dict[str, torch.Tensor], tmp_path: Path) -> bytes:
    path = tmp_path / "weights.safetensors"
    safetensors.torch.save_file(state, str(path), metadata={"format": "pt"})
    return path.read_bytes()


def encode(header: dict[str, Any] | bytes, data: bytes = b"") -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def entry(dtype: str, shape: list[int], begin: int, end: int) -> dict[str, Any]:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def upload(
    client: TestClient, data: bytes, filename: str = "weights.safetensors", **form: str
) -> httpx2.Response:
    files = {"file": (filename, data, "application/octet-stream")}
    return client.post("/v1/checkpoints", files=files, data=form)


def created(response: httpx2.Response) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    checkpoint: dict[str, Any] = response.json()
    return checkpoint


def services_of(client: TestClient) -> Services:
    services: Services = client.app.state.services  # type: ignore[attr-defined]
    return services


def stored_paths(settings: Settings) -> list[Path]:
    """Everything under the uploads directory, staging directories included."""
    root = settings.artifacts_dir / UPLOADS
    return sorted(root.rglob("*")) if root.exists() else []


def rows(client: TestClient) -> list[Checkpoint]:
    with services_of(client).sessions() as session:
        return list(session.query(Checkpoint))


def assert_nothing_stored(client: TestClient, settings: Settings) -> None:
    assert client.get("/v1/checkpoints").json() == {"items": [], "next_cursor": None}
    assert rows(client) == []
    assert stored_paths(settings) == []


@pytest.fixture
def small_limit_client(settings: Settings) -> Iterator[TestClient]:
    limited = settings.model_copy(update={"max_upload_bytes": SMALL_LIMIT})
    with TestClient(create_app(limited), headers=ADMIN_HEADERS) as client:
        yield client


# --- round trips ---------------------------------------------------------------------------


def test_upload_describe_download_round_trip_a_safetensors_torch_file(
    client: TestClient, settings: Settings, tmp_path: Path
) -> None:
    state = mlp_state()
    data = torch_file(state, tmp_path)

    checkpoint = created(upload(client, data, name="seed-mlp"))

    assert checkpoint["id"].startswith("ckpt_")
    assert checkpoint["name"] == "seed-mlp"
    assert checkpoint["kind"] == "upload"
    assert (checkpoint["job_id"], checkpoint["epoch"], checkpoint["step"]) == (None, None, None)
    assert checkpoint["metrics"] == {}
    assert checkpoint["tensors"] == {
        name: {"dtype": "F32", "shape": list(tensor.shape)} for name, tensor in state.items()
    }
    assert checkpoint["params"] == 8070
    assert checkpoint["bytes"] == len(data)
    assert checkpoint["sha256"] == hashlib.sha256(data).hexdigest()
    assert set(checkpoint) == {
        "id", "job_id", "name", "kind", "epoch", "step", "metrics", "tensors", "params",
        "bytes", "sha256", "created_at",
    }  # fmt: skip

    described = client.get(f"/v1/checkpoints/{checkpoint['id']}")
    assert described.status_code == 200
    assert described.json() == checkpoint

    download = client.get(f"/v1/checkpoints/{checkpoint['id']}/download")
    assert download.status_code == 200
    assert download.content == data
    assert download.headers["content-type"] == "application/octet-stream"
    assert download.headers["x-checksum-sha256"] == checkpoint["sha256"]
    assert download.headers["etag"] == f'"{checkpoint["sha256"]}"'
    assert f'filename="{checkpoint["id"]}.safetensors"' in download.headers["content-disposition"]
    loaded = safetensors.torch.load(download.content)
    assert all(torch.equal(loaded[name], tensor) for name, tensor in state.items())

    stored = settings.artifacts_dir / UPLOADS / checkpoint["id"] / "weights.safetensors"
    assert stored_paths(settings) == [stored.parent, stored]
    assert stored.read_bytes() == data


def test_upload_records_the_row_as_an_upload_with_its_directory_as_path(
    client: TestClient, tmp_path: Path
) -> None:
    checkpoint = created(upload(client, torch_file(mlp_state(), tmp_path)))

    [row] = rows(client)
    assert row.id == checkpoint["id"]
    assert (row.job_id, row.kind, row.state_sha256) == (None, "upload", None)
    assert row.path == f"checkpoints/uploads/{checkpoint['id']}"
    weights = service.weights_path(services_of(client).storage, row)
    assert weights.name == "weights.safetensors"
    assert weights.is_file()


def test_upload_keeps_every_dtype_and_shape_when_file_is_from_safetensors_numpy(
    client: TestClient,
) -> None:
    arrays: dict[str, npt.NDArray[Any]] = {
        "embedding": np.ones((5, 3), dtype=np.float16),
        "counts": np.arange(4, dtype=np.int64),
        "scale": np.array(0.5, dtype=np.float64),
        "mask": np.array([True, False, True]),
        "codes": np.zeros((2, 2, 2), dtype=np.uint8),
        "none": np.zeros((0, 7), dtype=np.int32),
    }
    data = safetensors.numpy.save(arrays)

    checkpoint = created(upload(client, data))

    assert checkpoint["tensors"] == {
        "embedding": {"dtype": "F16", "shape": [5, 3]},
        "counts": {"dtype": "I64", "shape": [4]},
        "scale": {"dtype": "F64", "shape": []},
        "mask": {"dtype": "BOOL", "shape": [3]},
        "codes": {"dtype": "U8", "shape": [2, 2, 2]},
        "none": {"dtype": "I32", "shape": [0, 7]},
    }
    assert checkpoint["params"] == 15 + 4 + 1 + 3 + 8 + 0
    download = client.get(f"/v1/checkpoints/{checkpoint['id']}/download")
    assert hashlib.sha256(download.content).hexdigest() == checkpoint["sha256"]
    assert safetensors.numpy.load(download.content)["counts"].tolist() == [0, 1, 2, 3]


def test_upload_keeps_bf16_tensors(client: TestClient, tmp_path: Path) -> None:
    state = {"w": torch.ones(3, 4, dtype=torch.bfloat16)}

    checkpoint = created(upload(client, torch_file(state, tmp_path)))

    assert checkpoint["tensors"] == {"w": {"dtype": "BF16", "shape": [3, 4]}}
    assert checkpoint["bytes"] == len(torch_file(state, tmp_path))


def test_upload_names_the_checkpoint_weights_when_no_name_is_given(
    client: TestClient, tmp_path: Path
) -> None:
    assert created(upload(client, torch_file(mlp_state(), tmp_path)))["name"] == "weights"


def test_download_answers_a_range_request_with_part_of_the_file(
    client: TestClient, tmp_path: Path
) -> None:
    data = torch_file(mlp_state(), tmp_path)
    checkpoint = created(upload(client, data))

    response = client.get(
        f"/v1/checkpoints/{checkpoint['id']}/download", headers={"Range": "bytes=0-7"}
    )

    assert response.status_code == 206
    assert response.content == data[:8]


# --- malformed uploads ---------------------------------------------------------------------


def one_tensor(**changes: Any) -> bytes:
    return encode({"w": entry("F32", [2, 3], 0, 24) | changes}, bytes(24))


def too_many_tensors() -> bytes:
    return encode({f"t{i}": entry("U8", [0], 0, 0) for i in range(10_001)})


MALFORMED = [
    pytest.param(b"", "shorter than the 8-byte", id="empty"),
    pytest.param(b"\x05\x00\x00", "shorter than the 8-byte", id="short"),
    pytest.param(bytes(8) + b"{}", "header length is 0", id="length-zero"),
    pytest.param(struct.pack("<Q", 2 * 2**20) + b"{}" * 10, "larger than the limit", id="long"),
    pytest.param(struct.pack("<Q", 2**60) + b"{}", "larger than the limit", id="length-bomb"),
    pytest.param(struct.pack("<Q", 50) + b"{}", "past the end of the 10-byte file", id="past-end"),
    pytest.param(encode(b"{\xff\xfe}"), "not UTF-8", id="not-utf8"),
    pytest.param(encode(b'["w"]'), "not a JSON object", id="not-object"),
    pytest.param(encode(b'{"w": {'), "not valid JSON", id="bad-json"),
    pytest.param(encode({}), "holds no tensors", id="no-tensors"),
    pytest.param(too_many_tensors(), "10001 tensors, more than the limit of 10000", id="many"),
    pytest.param(encode({"w": "F32"}), "exactly dtype, shape and data_offsets", id="not-entry"),
    pytest.param(one_tensor(extra=0), "exactly dtype, shape and data_offsets", id="extra-key"),
    pytest.param(
        one_tensor(dtype="F8_E5M2"),
        "F8_E5M2' is not one of F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL",
        id="dtype",
    ),
    pytest.param(one_tensor(shape=[2, -3]), "shape must be a list", id="shape-negative"),
    pytest.param(one_tensor(shape=[1] * 9), "at most 8 non-negative", id="shape-9-dims"),
    pytest.param(one_tensor(data_offsets=[24, 0]), "begin <= end", id="offsets-reversed"),
    pytest.param(one_tensor(data_offsets=[0, "24"]), "two non-negative", id="offsets-text"),
    pytest.param(one_tensor(shape=[3, 3]), "takes 36 bytes, but data_offsets", id="mismatch"),
    pytest.param(
        encode({"w": entry("F32", [2, 3], 0, 24)}, bytes(20)), "is truncated", id="truncated"
    ),
    pytest.param(
        encode({"w": entry("F32", [2, 3], 0, 24)}, bytes(30)), "has trailing bytes", id="padded"
    ),
    pytest.param(
        encode({"a": entry("U8", [4], 0, 4), "b": entry("U8", [4], 8, 12)}, bytes(12)),
        "leaves a gap",
        id="gap",
    ),
    pytest.param(
        encode({"a": entry("U8", [4], 0, 4), "b": entry("U8", [4], 2, 6)}, bytes(6)),
        "overlaps",
        id="overlap",
    ),
    pytest.param(
        encode({"__metadata__": {"epochs": 3}, "w": entry("U8", [1], 0, 1)}, b"x"),
        "__metadata__ must map strings to strings",
        id="metadata",
    ),
    pytest.param(
        encode({"a\x00": entry("U8", [1], 0, 1)}, b"x"), "control characters", id="name-nul"
    ),
]


@pytest.mark.parametrize(("data", "says"), MALFORMED)
def test_upload_returns_422_naming_file_and_stores_nothing_when_file_is_malformed(
    client: TestClient, settings: Settings, data: bytes, says: str
) -> None:
    error = error_of(upload(client, data), 422)

    assert error["code"] == "invalid_upload"
    assert [d["field"] for d in error["details"]] == ["file"]
    assert says in error["message"]
    assert_nothing_stored(client, settings)


class Opens:
    """Unpickling this would create `path`: what a malicious "checkpoint" does."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (str(self.path), "w"))


@pytest.mark.parametrize("filename", ["weights.pt", "weights.safetensors"])
def test_upload_returns_422_naming_a_pickle_and_never_unpickles_it(
    client: TestClient, settings: Settings, tmp_path: Path, filename: str
) -> None:
    marker = tmp_path / "unpickled"
    payload = pickle.dumps(Opens(marker))
    assert payload[0] == 0x80

    error = error_of(upload(client, payload, filename=filename), 422)

    assert error["code"] == "invalid_upload"
    assert [d["field"] for d in error["details"]] == ["file"]
    assert "pickle" in error["message"]
    assert "safetensors.torch.save_file" in error["message"]
    assert not marker.exists()
    assert_nothing_stored(client, settings)


def test_upload_returns_422_naming_a_pt_file_when_file_is_from_torch_save(
    client: TestClient, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "weights.pt"
    torch.save(mlp_state(), path)
    assert path.read_bytes()[:4] == b"PK\x03\x04"

    error = error_of(upload(client, path.read_bytes(), filename="weights.pt"), 422)

    assert error["code"] == "invalid_upload"
    assert ".pt" in error["message"]
    assert "safetensors.torch.save_file" in error["message"]
    assert_nothing_stored(client, settings)


def test_upload_returns_422_naming_file_when_no_file_is_sent(
    client: TestClient, settings: Settings
) -> None:
    error = error_of(client.post("/v1/checkpoints", data={"name": "weights"}), 422)

    assert [d["field"] for d in error["details"]] == ["file"]
    assert_nothing_stored(client, settings)


@pytest.mark.parametrize("name", ["a\tb", "nul\x00", "x" * 201])
def test_upload_returns_422_naming_name_and_stores_nothing_when_name_is_bad(
    client: TestClient, settings: Settings, tmp_path: Path, name: str
) -> None:
    error = error_of(upload(client, torch_file(mlp_state(), tmp_path), name=name), 422)

    assert [d["field"] for d in error["details"]] == ["name"]
    assert_nothing_stored(client, settings)


# --- size limit ----------------------------------------------------------------------------


def small_file(tensor_bytes: int) -> bytes:
    return encode({"w": entry("U8", [tensor_bytes], 0, tensor_bytes)}, bytes(tensor_bytes))


def test_upload_returns_413_and_stores_nothing_when_file_is_over_the_limit(
    small_limit_client: TestClient, settings: Settings
) -> None:
    data = small_file(SMALL_LIMIT)
    assert len(data) > SMALL_LIMIT

    error = error_of(upload(small_limit_client, data), 413)

    assert error["code"] == "upload_too_large"
    assert_nothing_stored(small_limit_client, settings)


def test_upload_returns_201_when_file_is_exactly_the_limit(
    small_limit_client: TestClient,
) -> None:
    data = next(small_file(n) for n in range(SMALL_LIMIT) if len(small_file(n)) == SMALL_LIMIT)

    assert created(upload(small_limit_client, data))["bytes"] == SMALL_LIMIT


def test_upload_refuses_a_stream_of_unknown_size_as_soon_as_it_passes_the_limit(
    small_limit_client: TestClient, settings: Settings
) -> None:
    # Clients need not say how big a file is: the copy counts bytes as they arrive.
    stream = io.BytesIO(small_file(10 * SMALL_LIMIT))
    services = services_of(small_limit_client)

    with services.sessions() as session, pytest.raises(UploadTooLarge):
        service.upload(
            session=session,
            storage=services.storage,
            tenant="admin",
            stream=stream,
            size=None,
            name="weights",
            max_bytes=SMALL_LIMIT,
            quota_bytes=settings.tenant_storage_bytes,
        )

    assert stream.tell() == SMALL_LIMIT + 1
    assert_nothing_stored(small_limit_client, settings)


# --- a failed insert -----------------------------------------------------------------------


@pytest.fixture
def inserts_refused(settings: Settings, backend: str) -> Iterator[None]:
    """A trigger that makes the database refuse every new checkpoint row."""
    engine = create_engine(settings.sqlalchemy_url)
    if backend == "sqlite":
        create = [
            "CREATE TRIGGER refuse_checkpoints BEFORE INSERT ON checkpoints "
            "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
        ]
        drop = ["DROP TRIGGER refuse_checkpoints"]
    else:
        create = [
            "CREATE FUNCTION refuse_checkpoint() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$",
            "CREATE TRIGGER refuse_checkpoints BEFORE INSERT ON checkpoints "
            "FOR EACH ROW EXECUTE FUNCTION refuse_checkpoint()",
        ]
        drop = [
            "DROP TRIGGER refuse_checkpoints ON checkpoints",
            "DROP FUNCTION refuse_checkpoint()",
        ]
    with engine.begin() as connection:
        for statement in create:
            connection.execute(text(statement))
    yield
    with engine.begin() as connection:
        for statement in drop:
            connection.execute(text(statement))
    engine.dispose()


@pytest.mark.usefixtures("inserts_refused")
def test_upload_leaves_no_file_when_the_row_cannot_be_inserted(
    client: TestClient, settings: Settings, tmp_path: Path
) -> None:
    with pytest.raises(DBAPIError, match="refused by the test"):
        upload(client, torch_file(mlp_state(), tmp_path))

    assert stored_paths(settings) == []
    assert rows(client) == []


# --- reading -------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", "/download"])
def test_get_returns_404_checkpoint_not_found_when_checkpoint_is_unknown(
    client: TestClient, suffix: str
) -> None:
    error = error_of(client.get(f"/v1/checkpoints/ckpt_missing{suffix}"), 404)

    assert error["code"] == "checkpoint_not_found"
    assert "ckpt_missing" in error["message"]


def test_download_returns_410_when_the_weights_file_is_gone(
    client: TestClient, settings: Settings, tmp_path: Path
) -> None:
    checkpoint = created(upload(client, torch_file(mlp_state(), tmp_path)))
    (settings.artifacts_dir / UPLOADS / checkpoint["id"] / "weights.safetensors").unlink()

    error = error_of(client.get(f"/v1/checkpoints/{checkpoint['id']}/download"), 410)

    assert error["code"] == "checkpoint_file_missing"


def test_list_pages_checkpoints_newest_first(client: TestClient) -> None:
    ids = [created(upload(client, small_file(i + 1), name=f"c{i}"))["id"] for i in range(3)]

    first = client.get("/v1/checkpoints", params={"limit": 2}).json()
    rest = client.get("/v1/checkpoints", params={"limit": 2, "cursor": first["next_cursor"]})

    assert [c["id"] for c in first["items"]] == ids[::-1][:2]
    assert first["next_cursor"] == ids[1]
    assert [c["id"] for c in rest.json()["items"]] == ids[:1]
    assert rest.json()["next_cursor"] is None


def job_checkpoint(job_id: str, epoch: int | None, *, age_s: float = 0) -> Checkpoint:
    """A row as a job would record it (the trainer's own writing is not under test)."""
    checkpoint_id = f"ckpt_{job_id[-8:]}{epoch if epoch is not None else 'final'}"
    return Checkpoint(
        id=checkpoint_id,
        tenant="admin",  # the `client` fixture's tenant
        job_id=job_id,
        name=f"epoch {epoch}" if epoch is not None else "final",
        kind="epoch" if epoch is not None else "final",
        epoch=epoch,
        step=None if epoch is None else 10 * epoch,
        metrics={"val_accuracy": 0.5},
        tensors={
            "1.weight": {"dtype": "F32", "shape": [4, 16]},
            "1.bias": {"dtype": "F32", "shape": [4]},
        },
        bytes=1000,
        sha256="0" * 64,
        path=f"checkpoints/{job_id}/{checkpoint_id}",
        state_sha256="1" * 64,
        created_at=utcnow() - timedelta(seconds=age_s),
    )


def test_list_filters_by_job_and_list_for_job_orders_by_epoch_with_final_last(
    client: TestClient, tmp_path: Path
) -> None:
    uploaded = created(upload(client, torch_file(mlp_state(), tmp_path)))
    job = client.post("/v1/jobs", json=small_job())
    assert job.status_code == 201, job.text
    job_id = job.json()["id"]
    services = services_of(client)
    with services.sessions() as session:
        # Inserted out of order, so neither insertion nor creation time explains the order.
        for epoch, age in [(None, 0), (2, 10), (1, 5)]:
            session.add(job_checkpoint(job_id, epoch, age_s=age))
        session.commit()

    mine = client.get("/v1/checkpoints", params={"job_id": job_id}).json()
    everyone = client.get("/v1/checkpoints").json()
    nobody = client.get("/v1/checkpoints", params={"job_id": "job_unknown"}).json()

    assert {c["job_id"] for c in mine["items"]} == {job_id}
    assert len(mine["items"]) == 3
    assert uploaded["id"] in [c["id"] for c in everyone["items"]]
    assert len(everyone["items"]) == 4
    assert nobody == {"items": [], "next_cursor": None}
    with services.sessions() as session:
        ordered = service.list_for_job(session, job_id)
        assert [(c.kind, c.epoch) for c in ordered] == [("epoch", 1), ("epoch", 2), ("final", None)]
        described = service.describe(ordered[0])
    assert described.params == 4 * 16 + 4
    assert described.metrics == {"val_accuracy": 0.5}
    assert described.tensors["1.bias"].shape == [4]
