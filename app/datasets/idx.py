"""Parse IDX files (the MNIST format) from untrusted uploads, raw or gzip-compressed.

Pure Python and numpy so that the API process can validate an upload without importing torch.
"""

import gzip
import io
import math
import struct
import zlib
from collections.abc import Mapping
from typing import Any, BinaryIO, Final

import numpy as np
import numpy.typing as npt

from app.errors import UploadInvalid, UploadTooLarge

# IDX stores every multi-byte value big-endian, so the dtypes name the byte order explicitly.
IDX_DTYPES: Final[Mapping[int, np.dtype[Any]]] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
IDX_MAGIC_PREFIX: Final = b"\x00\x00"
IDX_MAGIC_SIZE: Final = 4
IDX_DIM_SIZE: Final = 4
IDX_MAX_DIMS: Final = 4
GZIP_MAGIC: Final = b"\x1f\x8b"

# Small enough that one read never holds much more than the limit in memory at once.
READ_CHUNK_BYTES: Final = 1 << 20

# gzip.GzipFile signals corruption through several unrelated exception types.
_GZIP_ERRORS: Final = (gzip.BadGzipFile, EOFError, zlib.error, OSError)


class _BoundedReader:
    """Yields already-consumed prefix bytes, then the stream, failing once `limit` is passed.

    The prefix exists because sniffing the gzip magic consumes bytes and upload streams are not
    guaranteed to be seekable. Counting here bounds the compressed input as well as the output,
    so a stream of empty deflate blocks cannot keep the parser busy forever.
    """

    def __init__(self, prefix: bytes, stream: BinaryIO, limit: int, field: str) -> None:
        self._prefix = prefix
        self._stream = stream
        self._limit = limit
        self._field = field
        self._count = len(prefix)

    def read(self, size: int = -1) -> bytes:
        if self._prefix:
            take = len(self._prefix) if size < 0 else size
            out, self._prefix = self._prefix[:take], self._prefix[take:]
            return out
        # Never ask for more than one byte past the limit: that byte alone proves the excess.
        room = self._limit + 1 - self._count
        want = room if size < 0 else min(size, room)
        data = self._stream.read(max(want, 0))
        self._count += len(data)
        if self._count > self._limit:
            raise _too_large(self._field, self._limit)
        return data

    def seek(self, offset: int) -> int:
        # GzipFile only seeks to rewind, which a single forward read never does.
        raise io.UnsupportedOperation("upload streams are read forward only")


def _too_large(field: str, max_bytes: int) -> UploadTooLarge:
    return UploadTooLarge(f"{field}: file is larger than the limit of {max_bytes} bytes")


def _read_bounded(source: _BoundedReader | gzip.GzipFile, field: str, max_bytes: int) -> bytes:
    payload = bytearray()
    while True:
        chunk = source.read(min(READ_CHUNK_BYTES, max_bytes + 1 - len(payload)))
        if not chunk:
            return bytes(payload)
        payload += chunk
        if len(payload) > max_bytes:
            raise _too_large(field, max_bytes)


def _read_payload(stream: BinaryIO, field: str, max_bytes: int) -> bytes:
    """Return the decompressed bytes of the upload, never holding more than max_bytes + 1."""
    head = stream.read(len(GZIP_MAGIC))
    reader = _BoundedReader(head, stream, max_bytes, field)
    if head != GZIP_MAGIC:
        return _read_bounded(reader, field, max_bytes)
    try:
        with gzip.GzipFile(fileobj=reader, mode="rb") as decompressed:
            return _read_bounded(decompressed, field, max_bytes)
    except _GZIP_ERRORS as exc:
        raise UploadInvalid.at(field, f"corrupt gzip data: {exc}") from exc


def _dtype_names() -> str:
    return ", ".join(f"0x{code:02X} ({dtype.name})" for code, dtype in IDX_DTYPES.items())


def _parse_header(payload: bytes, field: str) -> tuple[np.dtype[Any], tuple[int, ...]]:
    if not payload:
        raise UploadInvalid.at(field, "file is empty")
    if len(payload) < IDX_MAGIC_SIZE:
        raise UploadInvalid.at(
            field, f"file is {len(payload)} bytes, too short for the 4-byte IDX magic number"
        )
    magic = payload[:IDX_MAGIC_SIZE]
    if magic[:2] != IDX_MAGIC_PREFIX:
        raise UploadInvalid.at(
            field,
            f"not an IDX file: magic number starts with 0x{magic[:2].hex()}, expected 0x0000",
        )
    code, ndim = magic[2], magic[3]
    dtype = IDX_DTYPES.get(code)
    if dtype is None:
        raise UploadInvalid.at(
            field, f"unknown IDX data type code 0x{code:02X}; expected one of {_dtype_names()}"
        )
    if not 1 <= ndim <= IDX_MAX_DIMS:
        raise UploadInvalid.at(
            field, f"IDX header declares {ndim} dimensions; expected 1 to {IDX_MAX_DIMS}"
        )
    header_size = IDX_MAGIC_SIZE + IDX_DIM_SIZE * ndim
    if len(payload) < header_size:
        raise UploadInvalid.at(
            field,
            f"IDX header declares {ndim} dimensions and needs {header_size} bytes, "
            f"but the file is only {len(payload)} bytes",
        )
    shape = struct.unpack(f">{ndim}I", payload[IDX_MAGIC_SIZE:header_size])
    for axis, size in enumerate(shape):
        if size == 0:
            raise UploadInvalid.at(
                field, f"dimension {axis} of shape {shape} has size 0; every size must be >= 1"
            )
    return dtype, shape


def read_idx(stream: BinaryIO, *, field: str, max_bytes: int) -> npt.NDArray[Any]:
    """Read one IDX file (raw or gzip) into a native-byte-order array of its declared shape.

    Raises UploadTooLarge once more than `max_bytes` are read or decompressed, and
    UploadInvalid (naming `field`) for anything that is not a well-formed IDX file. Whether
    the values make a dataset (finite, labels in range) is `check_arrays`' concern.
    """
    payload = _read_payload(stream, field, max_bytes)
    dtype, shape = _parse_header(payload, field)
    header_size = IDX_MAGIC_SIZE + IDX_DIM_SIZE * len(shape)
    expected = math.prod(shape) * dtype.itemsize
    found = len(payload) - header_size
    if found != expected:
        problem = "truncated" if found < expected else "has trailing bytes"
        raise UploadInvalid.at(
            field,
            f"data {problem}: shape {shape} of {dtype.name} needs {expected} bytes "
            f"after the header, found {found}",
        )
    # astype copies, so the result owns writable memory instead of viewing immutable bytes.
    return (
        np.frombuffer(payload, dtype=dtype, offset=header_size)
        .reshape(shape)
        .astype(dtype.newbyteorder("="))
    )


def read_idx_dataset(
    images: BinaryIO, labels: BinaryIO, *, max_bytes: int
) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """Read an (images, labels) IDX pair as stored; `max_bytes` bounds each file separately.

    (N, H, W) images gain a channel axis, (N, 1, H, W), because the models consume
    channels-first input; every other shape, and both dtypes, are returned unchanged for
    `check_arrays` to judge.
    """
    image_array = read_idx(images, field="images", max_bytes=max_bytes)
    label_array = read_idx(labels, field="labels", max_bytes=max_bytes)
    if image_array.ndim == 3:
        image_array = image_array[:, np.newaxis, :, :]
    return image_array, label_array
