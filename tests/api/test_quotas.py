"""The per-tenant storage quota: an upload that would pass it is a 413 naming the figures
and stores nothing; each tenant has its own."""

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from tests.client import bearer, error_of, new_key
from tests.conftest import ADMIN_HEADERS

pytestmark = pytest.mark.usefixtures("backend")
QUOTA = 10_000
# 100 uint8 images of 8x8 (6 400 bytes) and 100 int64 labels (800 bytes): 7 200 bytes stored.
SAMPLES, SIDE, STORED = 100, 8, 100 * 8 * 8 + 100 * 8


def idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape
    )
    return header + array.astype(np.uint8).tobytes()


def idx_files() -> dict[str, tuple[str, bytes]]:
    images = np.arange(SAMPLES * SIDE * SIDE).reshape(SAMPLES, SIDE, SIDE) % 251
    return {"images": ("i", idx(images)), "labels": ("l", idx(np.arange(SAMPLES) % 4))}


def npz_file() -> dict[str, tuple[str, bytes]]:
    buffer = io.BytesIO()
    x = (np.arange(SAMPLES * SIDE * SIDE).reshape(SAMPLES, SIDE * SIDE) % 251).astype(np.uint8)
    np.savez(buffer, x=x, y=np.arange(SAMPLES) % 4)
    return {"file": ("d.npz", buffer.getvalue())}


def folders(settings: Settings, kind: str) -> list[Path]:
    root = settings.artifacts_dir / kind
    return sorted(p for p in root.rglob("*") if p.is_dir()) if root.exists() else []


@pytest.fixture
def quota_client(settings: Settings) -> Iterator[TestClient]:
    small = settings.model_copy(update={"tenant_storage_bytes": QUOTA})
    with TestClient(create_app(small), headers=ADMIN_HEADERS) as client:
        yield client


@pytest.mark.parametrize("format", ["idx", "npz"])
def test_a_dataset_past_the_tenants_quota_is_a_413_naming_the_figures_and_stores_nothing(
    quota_client: TestClient, settings: Settings, format: str
) -> None:
    files = idx_files() if format == "idx" else npz_file()
    first = quota_client.post("/v1/datasets", files=files, data={"format": format})
    assert first.status_code == 201, first.text
    assert first.json()["bytes"] == STORED
    stored = folders(settings, "datasets")

    error = error_of(quota_client.post("/v1/datasets", files=files, data={"format": format}), 413)

    assert error["code"] == "storage_quota_exceeded"
    assert f"stores {STORED} bytes; {STORED} more would pass" in error["message"]
    assert f"storage quota of {QUOTA} bytes" in error["message"]
    listed = quota_client.get("/v1/datasets").json()["items"]
    assert [d["id"] for d in listed] == [first.json()["id"]]
    assert folders(settings, "datasets") == stored


def test_a_checkpoint_counts_towards_the_quota_and_one_past_it_is_a_413(
    quota_client: TestClient, settings: Settings
) -> None:
    assert (
        quota_client.post("/v1/datasets", files=idx_files(), data={"format": "idx"}).status_code
        == 201
    )
    weights = safetensors.numpy.save({"w": np.zeros(1000, np.float32)})  # 4 000 bytes of data
    files = {"file": ("w.safetensors", weights, "application/octet-stream")}

    error = error_of(quota_client.post("/v1/checkpoints", files=files), 413)

    assert error["code"] == "storage_quota_exceeded"
    assert f"stores {STORED} bytes; {len(weights)} more" in error["message"]
    assert quota_client.get("/v1/checkpoints").json()["items"] == []
    assert folders(settings, "checkpoints") in (
        [],
        [settings.artifacts_dir / "checkpoints" / "uploads"],
    )


def test_each_tenant_has_its_own_quota(quota_client: TestClient) -> None:
    assert (
        quota_client.post("/v1/datasets", files=idx_files(), data={"format": "idx"}).status_code
        == 201
    )
    other = bearer(new_key(quota_client, "other")["key"])

    response = quota_client.post(
        "/v1/datasets", files=idx_files(), data={"format": "idx"}, headers=other
    )

    assert response.status_code == 201, response.text
