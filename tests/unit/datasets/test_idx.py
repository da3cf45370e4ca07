"""IDX parsing: round trips, the real MNIST files, every malformed file, and gzip bombs.

What the arrays must hold to make a dataset is check_arrays' concern (test_validation.py)."""

import gzip
import io
import struct
import tracemalloc
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from app.datasets.idx import IDX_DTYPES, read_idx, read_idx_dataset
from app.errors import UploadInvalid, UploadTooLarge

REPO_ROOT = Path(__file__).resolve().parents[3]
MNIST_DIR = REPO_ROOT.parent / "shared" / "datasets" / "mnist"
CODE_BY_DTYPE = {dtype.newbyteorder("="): code for code, dtype in IDX_DTYPES.items()}
LIMIT = 10 * 1024 * 1024


def idx_header(code: int, shape: tuple[int, ...]) -> bytes:
    return bytes([0, 0, code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)


def idx_bytes(array: npt.NDArray[Any]) -> bytes:
    code = CODE_BY_DTYPE[array.dtype.newbyteorder("=")]
    return idx_header(code, array.shape) + array.astype(IDX_DTYPES[code]).tobytes()


def read(data: bytes, *, field: str = "images", max_bytes: int = LIMIT) -> npt.NDArray[Any]:
    return read_idx(io.BytesIO(data), field=field, max_bytes=max_bytes)


def invalid(data: bytes, field: str = "images") -> UploadInvalid:
    with pytest.raises(UploadInvalid) as caught:
        read(data, field=field)
    assert [d.field for d in caught.value.details] == [field]
    return caught.value


def dataset(
    images: npt.NDArray[Any], labels: npt.NDArray[Any]
) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    return read_idx_dataset(
        io.BytesIO(idx_bytes(images)), io.BytesIO(idx_bytes(labels)), max_bytes=LIMIT
    )


def bomb(header: bytes, zero_bytes: int) -> bytes:
    """A gzip file of `zero_bytes` zeros after `header`, built without holding the zeros."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [compressor.compress(header)]
    block = bytes(1 << 20)
    for _ in range(zero_bytes // len(block)):
        parts.append(compressor.compress(block))
    parts.append(compressor.flush())
    return b"".join(parts)


idx_arrays = st.sampled_from([d.newbyteorder("=") for d in IDX_DTYPES.values()]).flatmap(
    lambda dtype: hnp.arrays(
        dtype,
        hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=5),
        elements=hnp.from_dtype(dtype, allow_nan=False, allow_infinity=False),
    )
)


@settings(max_examples=60, deadline=None)
@given(array=idx_arrays, compress=st.booleans())
def test_read_idx_round_trips_every_dtype_and_rank_raw_or_gzipped(
    array: npt.NDArray[Any], compress: bool
) -> None:
    data = idx_bytes(array)
    result = read(gzip.compress(data) if compress else data)

    assert result.shape == array.shape
    assert result.dtype == array.dtype
    assert result.dtype.isnative
    np.testing.assert_array_equal(result, array)


def test_read_idx_returns_writable_array_owning_its_memory() -> None:
    result = read(idx_bytes(np.arange(6, dtype=np.int32).reshape(2, 3)))

    assert result.flags.writeable
    result[0, 0] = 7


def test_read_idx_dataset_reads_real_mnist_test_split() -> None:
    if not MNIST_DIR.is_dir():
        pytest.skip(f"{MNIST_DIR} is absent")
    with (
        (MNIST_DIR / "t10k-images-idx3-ubyte.gz").open("rb") as images,
        (MNIST_DIR / "t10k-labels-idx1-ubyte.gz").open("rb") as labels,
    ):
        x, y = read_idx_dataset(images, labels, max_bytes=64 * 1024 * 1024)

    assert x.shape == (10000, 1, 28, 28)
    assert x.dtype == np.uint8
    assert y.shape == (10000,)
    assert y.dtype == np.uint8
    assert set(np.unique(y).tolist()) == set(range(10))
    assert x.max() == 255


def test_read_idx_dataset_adds_channel_axis_to_three_dim_images() -> None:
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    x, y = dataset(images, np.array([1, 0], dtype=np.uint8))

    assert x.shape == (2, 1, 3, 4)
    np.testing.assert_array_equal(x[:, 0], images)
    np.testing.assert_array_equal(y, [1, 0])
    assert y.dtype == np.uint8


@pytest.mark.parametrize("shape", [(3, 5), (3, 2, 4, 4)])
def test_read_idx_dataset_keeps_two_and_four_dim_images_unchanged(shape: tuple[int, ...]) -> None:
    images = np.ones(shape, dtype=np.float32)
    x, _ = dataset(images, np.zeros(3, dtype=np.int16))

    assert x.shape == shape
    assert x.dtype == np.float32


def test_read_idx_dataset_returns_labels_and_counts_as_stored_for_check_arrays() -> None:
    x, y = dataset(np.zeros((3, 4), np.uint8), np.array([0.5, 70000.0], np.float32))

    assert x.shape == (3, 4)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, [0.5, 70000.0])


def test_read_idx_rejects_empty_file() -> None:
    assert "empty" in invalid(b"").message


def test_read_idx_rejects_empty_gzipped_file() -> None:
    assert "empty" in invalid(gzip.compress(b""), field="labels").message


def test_read_idx_rejects_file_shorter_than_magic() -> None:
    assert "too short" in invalid(b"\x00\x00\x08").message


def test_read_idx_rejects_bad_magic_naming_found_bytes() -> None:
    message = invalid(b"\x12\x34\x08\x01" + struct.pack(">I", 1) + b"\x00").message

    assert "not an IDX file" in message
    assert "0x1234" in message


def test_read_idx_rejects_unknown_dtype_code_listing_known_ones() -> None:
    message = invalid(idx_header(0x0A, (1,)) + b"\x00").message

    assert "0x0A" in message
    assert "0x08 (uint8)" in message


@pytest.mark.parametrize("ndim", [0, 5, 255])
def test_read_idx_rejects_dimension_count_outside_one_to_four(ndim: int) -> None:
    data = bytes([0, 0, 0x08, ndim]) + struct.pack(f">{ndim}I", *([1] * ndim)) + b"\x00"

    assert f"declares {ndim} dimensions" in invalid(data).message


def test_read_idx_rejects_header_truncated_inside_dimensions() -> None:
    message = invalid(bytes([0, 0, 0x08, 3]) + struct.pack(">I", 10)).message

    assert "needs 16 bytes" in message
    assert "only 8 bytes" in message


def test_read_idx_rejects_zero_sized_dimension() -> None:
    message = invalid(idx_header(0x08, (3, 0, 2))).message

    assert "dimension 1" in message
    assert "size 0" in message


def test_read_idx_rejects_truncated_data_naming_expected_length() -> None:
    data = idx_header(0x0C, (2, 3)) + bytes(4 * 6 - 1)
    message = invalid(data, field="labels").message

    assert "truncated" in message
    assert "needs 24 bytes" in message
    assert "found 23" in message


def test_read_idx_rejects_trailing_bytes_naming_expected_length() -> None:
    message = invalid(idx_header(0x08, (4,)) + bytes(5)).message

    assert "trailing" in message
    assert "needs 4 bytes" in message
    assert "found 5" in message


def test_read_idx_rejects_corrupt_gzip_stream() -> None:
    data = bytearray(gzip.compress(idx_bytes(np.arange(100, dtype=np.uint8))))
    data[12:20] = b"\xff" * 8

    assert "corrupt gzip" in invalid(bytes(data)).message


def test_read_idx_rejects_truncated_gzip_stream() -> None:
    data = gzip.compress(idx_bytes(np.arange(1000, dtype=np.int32)))

    assert "corrupt gzip" in invalid(data[: len(data) // 2]).message


def test_read_idx_rejects_gzip_with_bad_checksum() -> None:
    data = bytearray(gzip.compress(idx_bytes(np.arange(10, dtype=np.uint8))))
    data[-8] ^= 0xFF

    assert "corrupt gzip" in invalid(bytes(data)).message


def test_read_idx_raises_too_large_for_raw_file_past_limit() -> None:
    data = idx_bytes(np.zeros(2000, dtype=np.uint8))

    with pytest.raises(UploadTooLarge):
        read(data, max_bytes=1000)
    assert read(data, max_bytes=len(data)).shape == (2000,)


def test_read_idx_stops_gzip_bomb_early_without_inflating_it() -> None:
    zeros = 50_000_000
    data = bomb(idx_header(0x08, (50_000, 1000)), zeros)
    stream = io.BytesIO(data)

    tracemalloc.start()
    try:
        with pytest.raises(UploadTooLarge):
            read_idx(stream, field="images", max_bytes=1_000_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak < 8_000_000
    assert stream.tell() < len(data) // 2
