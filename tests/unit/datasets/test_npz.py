"""npz parsing: round trips, nothing unpickled, every malformed archive, and zip bombs."""

import io
import struct
import tracemalloc
import warnings
import zipfile
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from app.datasets.npz import CENTRAL_DIRECTORY_MAX_BYTES, NPY_HEADER_MAX_BYTES, read_npz
from app.errors import UploadInvalid, UploadTooLarge

LIMIT = 10 * 1024 * 1024
X = np.arange(12, dtype=np.float32).reshape(4, 3)
Y = np.array([0, 1, 2, 1], dtype=np.int64)


def npz(compressed: bool = False, **arrays: npt.NDArray[Any]) -> bytes:
    buffer = io.BytesIO()
    named: dict[str, Any] = arrays
    (np.savez_compressed if compressed else np.savez)(buffer, **named)
    return buffer.getvalue()


def npy(array: npt.NDArray[Any], version: tuple[int, int] = (1, 0)) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, version=version, allow_pickle=False)
    return buffer.getvalue()


def archive(members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as zf, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names are a test case, not a mistake
        for name, data in members.items():
            zf.writestr(name.split("#")[0], data)
    return buffer.getvalue()


def read(data: bytes, max_bytes: int = LIMIT) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    return read_npz(io.BytesIO(data), max_bytes=max_bytes)


def invalid(data: bytes) -> UploadInvalid:
    with pytest.raises(UploadInvalid) as caught:
        read(data)
    assert [d.field for d in caught.value.details] == ["file"]
    return caught.value


@pytest.mark.parametrize("compressed", [False, True])
@pytest.mark.parametrize(
    "x", [X, X.astype(np.uint8), X.astype(">f8"), np.zeros((2, 1, 3, 3), np.int16), X.T]
)
def test_read_npz_returns_x_and_y_as_saved(x: npt.NDArray[Any], compressed: bool) -> None:
    y = np.arange(len(x)) % 2

    got_x, got_y = read(npz(compressed, x=x, y=y))

    assert got_x.dtype == x.dtype
    np.testing.assert_array_equal(got_x, x)
    np.testing.assert_array_equal(got_y, y)


def test_read_npz_reads_npy_format_version_two() -> None:
    x, _ = read(archive({"x.npy": npy(X, (2, 0)), "y.npy": npy(Y)}))

    np.testing.assert_array_equal(x, X)


def test_read_npz_ignores_other_members() -> None:
    x, y = read(npz(x=X, y=Y, notes=np.zeros(3)))

    np.testing.assert_array_equal(x, X)
    np.testing.assert_array_equal(y, Y)


class Tripwire:
    """Unpickling this object runs `trip`: proof that an upload was unpickled."""

    tripped = False

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return trip, ()


def trip() -> None:
    Tripwire.tripped = True


@pytest.mark.parametrize("array", ["x", "y"])
def test_read_npz_refuses_object_arrays_without_unpickling_them(array: str) -> None:
    arrays: dict[str, Any] = {"x": X, "y": Y, array: np.array([Tripwire(), 1], dtype=object)}
    data = npz(**arrays)

    message = invalid(data).message

    assert f"array {array!r} holds Python objects" in message
    assert not Tripwire.tripped


@pytest.mark.parametrize("missing", ["x", "y"])
def test_read_npz_rejects_archive_without_an_array_naming_it(missing: str) -> None:
    arrays: dict[str, Any] = {"x": X, "y": Y, "z": Y}
    del arrays[missing]

    message = invalid(npz(**arrays)).message

    assert f"no array {missing!r}" in message
    assert "'z.npy'" in message


def test_read_npz_explains_arrays_saved_without_names() -> None:
    buffer = io.BytesIO()
    np.savez(buffer, X, Y)

    message = invalid(buffer.getvalue()).message

    assert "'arr_0.npy'" in message
    assert "np.savez(file, x=x, y=y)" in message


def test_read_npz_explains_a_single_npy_file() -> None:
    assert "single .npy array" in invalid(npy(X)).message


@pytest.mark.parametrize("data", [b"", b"x,y\n1,2\n", b"PK\x03\x04 truncated"])
def test_read_npz_rejects_files_that_are_not_zip_archives(data: bytes) -> None:
    invalid(data)


def test_read_npz_rejects_member_truncated_inside_its_data() -> None:
    invalid(archive({"x.npy": npy(X)[:-5], "y.npy": npy(Y)}))


def test_read_npz_rejects_corrupt_compressed_member() -> None:
    data = bytearray(npz(True, x=np.arange(10_000, dtype=np.int64), y=Y))
    start = data.index(b"x.npy") + 40
    data[start : start + 64] = b"\xff" * 64

    invalid(bytes(data))


def test_read_npz_rejects_duplicate_members() -> None:
    message = invalid(archive({"x.npy": npy(X), "x.npy#2": npy(X), "y.npy": npy(Y)})).message

    assert "'x.npy' twice" in message


def test_read_npz_rejects_npy_version_three() -> None:
    member = b"\x93NUMPY\x03\x00" + npy(X, (2, 0))[8:]

    assert "version 3.0" in invalid(archive({"x.npy": member, "y.npy": npy(Y)})).message


def test_read_npz_rejects_oversized_npy_header_before_reading_it() -> None:
    member = b"\x93NUMPY\x02\x00" + struct.pack("<I", 1 << 30) + b"{"

    message = invalid(archive({"x.npy": member, "y.npy": npy(Y)})).message

    assert f"the limit is {NPY_HEADER_MAX_BYTES}" in message


def test_read_npz_rejects_malformed_npy_header() -> None:
    member = b"\x93NUMPY\x01\x00" + struct.pack("<H", 8) + b"garbage\n"

    invalid(archive({"x.npy": member, "y.npy": npy(Y)}))


def test_read_npz_rejects_a_huge_central_directory_before_parsing_it() -> None:
    long_name = "n" * 60_000
    members = {f"{i}{long_name}": b"" for i in range(CENTRAL_DIRECTORY_MAX_BYTES // 60_000 + 1)}

    assert "zip directory" in invalid(archive(members)).message


def test_read_npz_raises_too_large_for_file_past_limit() -> None:
    data = npz(x=X, y=Y)

    with pytest.raises(UploadTooLarge):
        read(data, max_bytes=len(data) - 1)
    assert read(data, max_bytes=len(data))[0].shape == X.shape


def test_read_npz_counts_other_members_against_the_limit() -> None:
    data = archive({"x.npy": npy(X), "y.npy": npy(Y), "big": bytes(50_000)}, zipfile.ZIP_DEFLATED)
    assert len(data) < 10_000

    with pytest.raises(UploadTooLarge):
        read(data, max_bytes=10_000)


def test_read_npz_refuses_a_declared_huge_shape_from_its_header_alone() -> None:
    member = _npy_header_only((1_000_000, 1_000_000), "<f8")  # 10^12 values, none present

    with pytest.raises(UploadTooLarge) as caught:
        read(archive({"x.npy": member, "y.npy": npy(Y)}))

    assert f"declare {8 * 10**12 + Y.nbytes} bytes" in caught.value.message


def _npy_header_only(shape: tuple[int, ...], descr: str) -> bytes:
    buffer = io.BytesIO()
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue()


def test_read_npz_stops_a_zip_bomb_without_inflating_it() -> None:
    zeros = 50_000_000
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("x.npy", "w") as member:
            member.write(_npy_header_only((zeros // 8, 1), "<f8"))
            block = bytes(1 << 20)
            for _ in range(zeros // len(block)):
                member.write(block)
        zf.writestr("y.npy", npy(Y))
    data = buffer.getvalue()
    assert len(data) < 1_000_000

    tracemalloc.start()
    try:
        with pytest.raises(UploadTooLarge):
            read(data, max_bytes=1_000_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak < 2_000_000


@pytest.mark.parametrize("extra", [b"\x00", b"trailing garbage" * 100])
def test_read_npz_refuses_trailing_bytes_after_the_archive_like_idx(extra: bytes) -> None:
    assert "trailing bytes" in invalid(npz(x=X, y=Y) + extra).message


def test_read_npz_accepts_an_archive_comment() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("x.npy", npy(X))
        zf.writestr("y.npy", npy(Y))
        zf.comment = b"written by hand"
    x, y = read(buffer.getvalue())
    assert x.tolist() == X.tolist() and y.tolist() == Y.tolist()


def test_read_npz_refuses_trailing_bytes_inside_a_member() -> None:
    error = invalid(archive({"x.npy": npy(X) + b"\x00" * 8, "y.npy": npy(Y)}))
    assert "'x.npy' has trailing bytes" in error.message
