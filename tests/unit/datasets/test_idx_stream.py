"""IDX uploads streamed to disk: memory stays bounded whatever a gzip inflates to, and the
stored arrays, hash and errors are those of reading the whole upload."""

import gzip
import io
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from app.datasets.idx_stream import CHUNK_BYTES, store_idx
from app.datasets.service import content_hash
from app.errors import UploadInvalid, UploadTooLarge

FLOAT32 = 0x0D
UBYTE = 0x08


def idx(array: np.ndarray, code: int = UBYTE) -> bytes:
    dtype = {UBYTE: ">u1", FLOAT32: ">f4"}[code]
    header = bytes([0, 0, code, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape
    )
    return header + array.astype(dtype).tobytes()


def admit_all(_: int) -> None:
    return None


def test_a_gzip_inflating_to_64_mb_is_stored_holding_a_few_chunks_at_most(tmp_path: Path) -> None:
    samples = 64 * 1024  # of 32x32: 64 MiB of images from a gzip of about 64 KiB
    images = np.zeros((samples, 32, 32), np.uint8)
    images[::7] = 3
    labels = np.arange(samples) % 10
    compressed = gzip.compress(idx(images))
    assert len(compressed) < 1 << 20

    tracemalloc.start()  # numpy reports its buffers to tracemalloc
    try:
        stored = store_idx(
            io.BytesIO(compressed),
            io.BytesIO(idx(labels)),
            task="classification",
            max_bytes=1 << 30,
            admit=admit_all,
            directory=tmp_path,
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    # The labels as read and as int64 (0.6 MiB), and a chunk read, converted and written.
    assert peak < 4 * CHUNK_BYTES + 16 * samples
    x, y = np.load(tmp_path / "x.npy"), np.load(tmp_path / "y.npy")
    assert x.shape == (samples, 1, 32, 32) and x.dtype == np.uint8
    assert np.array_equal(x[:, 0], images) and np.array_equal(y, labels)
    assert stored.sha256 == content_hash(x, y)
    assert stored.bytes == x.nbytes + y.nbytes


def test_a_non_finite_value_is_named_by_its_index_in_the_whole_upload(tmp_path: Path) -> None:
    per_sample = 16 * 16 * 4
    samples = 3 * CHUNK_BYTES // per_sample
    images = np.ones((samples, 16, 16), np.float32)
    images[samples - 5, 2, 3] = np.nan

    with pytest.raises(UploadInvalid) as raised:
        store_idx(
            io.BytesIO(idx(images, FLOAT32)),
            io.BytesIO(idx(np.arange(samples) % 2)),
            task="classification",
            max_bytes=1 << 30,
            admit=admit_all,
            directory=tmp_path,
        )
    assert f"images[{samples - 5}, 0, 2, 3] is nan" in raised.value.message


def test_the_size_is_admitted_from_the_header_before_any_image_is_written(tmp_path: Path) -> None:
    asked: list[int] = []

    def refuse(size: int) -> None:
        asked.append(size)
        raise UploadTooLarge("no room")

    with pytest.raises(UploadTooLarge):
        store_idx(
            io.BytesIO(idx(np.zeros((10, 4, 4)))),
            io.BytesIO(idx(np.arange(10) % 2)),
            task="classification",
            max_bytes=1 << 20,
            admit=refuse,
            directory=tmp_path,
        )
    assert asked == [10 * 16 + 10 * 8]
    assert list(tmp_path.iterdir()) == []
