"""IDX uploads stored with bounded memory: the images are decompressed, checked, converted
and written to their .npy file one chunk of samples at a time, never whole in memory.

A 500 KB gzip can inflate to 500 MB of images; read whole, the API held that several times
over. Here it holds the labels (one value per sample) and a chunk of images, whatever the
upload's size, and knows the stored size from the header before it writes a byte.
"""

import gzip
import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Final

import numpy as np
import numpy.typing as npt

from app.datasets.idx import (
    _GZIP_ERRORS,
    GZIP_MAGIC,
    IDX_DIM_SIZE,
    IDX_MAGIC_SIZE,
    _BoundedReader,
    _parse_header,
    _too_large,
    read_idx,
)
from app.datasets.validation import (
    COMPACT_INT_BYTES,
    Origin,
    Task,
    _check_shapes,
    _stored_x,
    check_arrays,
)
from app.errors import UploadInvalid

# Images read, converted and written per step: the bound on what an upload holds at once.
CHUNK_BYTES: Final = 4 << 20
FIELD: Final = "images"


@dataclass(frozen=True)
class StoredIdx:
    """What a streamed IDX pair holds, once its x.npy and y.npy are written."""

    samples: int
    input_shape: list[int]
    task: Task
    classes: int | None
    targets: int | None
    bytes: int
    sha256: str


@dataclass(frozen=True, eq=False)
class _ChunkOrigin(Origin):
    """Names a value of a chunk by its index in the whole upload."""

    offset: int = 0

    def where_x(self, index: Any) -> str:
        return super().where_x([index[0] + self.offset, *index[1:]])


class _Images:
    """The decompressed images stream, bounded by `max_bytes`, read exactly."""

    def __init__(self, stream: BinaryIO, max_bytes: int) -> None:
        head = stream.read(len(GZIP_MAGIC))
        reader = _BoundedReader(head, stream, max_bytes, FIELD)
        self._source: _BoundedReader | gzip.GzipFile = (
            gzip.GzipFile(fileobj=reader, mode="rb") if head == GZIP_MAGIC else reader
        )
        self._max_bytes, self._count = max_bytes, 0

    def read(self, size: int) -> bytes:
        """Up to `size` bytes; fewer only at the end of the data."""
        parts, wanted = [], size
        while wanted > 0:
            try:
                part = self._source.read(wanted)
            except _GZIP_ERRORS as exc:
                raise UploadInvalid.at(FIELD, f"corrupt gzip data: {exc}") from exc
            if not part:
                break
            parts.append(part)
            wanted -= len(part)
        data = b"".join(parts)
        self._count += len(data)
        if self._count > self._max_bytes:
            raise _too_large(FIELD, self._max_bytes)
        return data


def _header(images: _Images) -> tuple[np.dtype[Any], tuple[int, ...]]:
    magic = images.read(IDX_MAGIC_SIZE)
    dims = images.read(IDX_DIM_SIZE * magic[3]) if len(magic) == IDX_MAGIC_SIZE else b""
    return _parse_header(magic + dims, FIELD)


def _write_npy(path: Path, array: npt.NDArray[Any], digest: Any) -> None:
    with path.open("wb") as file:
        np.save(file, array, allow_pickle=False)
    digest.update(f"{array.dtype.str}{array.shape}".encode())
    digest.update(np.ascontiguousarray(array).data)


def store_idx(
    images: BinaryIO,
    labels: BinaryIO,
    *,
    task: Task,
    max_bytes: int,
    admit: Callable[[int], None],
    directory: Path,
) -> StoredIdx:
    """Check an IDX pair and write it as x.npy and y.npy into `directory`; `admit(bytes)`
    is asked before the first byte of images is written and raises to refuse the size."""
    origin = Origin(x_field="images", y_field="labels", x_name="images", y_name="labels")
    y = read_idx(labels, field="labels", max_bytes=max_bytes)
    stream = _Images(images, max_bytes)
    source_dtype, idx_shape = _header(stream)
    # (N, H, W) images gain a channel axis: the nets consume channels-first input.
    shape = (idx_shape[0], 1, *idx_shape[1:]) if len(idx_shape) == 3 else idx_shape
    # Shapes and dtypes are judged on a view that takes no memory; values chunk by chunk.
    _check_shapes(np.broadcast_to(np.zeros((), source_dtype), shape), y, task, origin)
    labels_checked = check_arrays(np.zeros((len(y), 1), np.uint8), y, task=task, origin=origin)
    compact = source_dtype.kind in "biu" and source_dtype.itemsize <= COMPACT_INT_BYTES
    stored_dtype = np.dtype(
        np.uint8 if source_dtype.kind == "b" else source_dtype.newbyteorder("=")
    )
    stored_dtype = stored_dtype if compact else np.dtype(np.float32)
    sample_values = math.prod(shape[1:])
    x_bytes = shape[0] * sample_values * stored_dtype.itemsize
    admit(x_bytes + labels_checked.y.nbytes)

    digest = hashlib.sha256()
    digest.update(f"{stored_dtype.str}{shape}".encode())
    per_chunk = max(1, CHUNK_BYTES // (sample_values * source_dtype.itemsize))
    with (directory / "x.npy").open("wb") as file:
        header = {"descr": np.lib.format.dtype_to_descr(stored_dtype), "fortran_order": False}
        np.lib.format.write_array_header_1_0(file, {**header, "shape": shape})
        for start in range(0, shape[0], per_chunk):
            count = min(per_chunk, shape[0] - start)
            wanted = count * sample_values * source_dtype.itemsize
            data = stream.read(wanted)
            if len(data) != wanted:
                expected = shape[0] * sample_values * source_dtype.itemsize
                found = start * sample_values * source_dtype.itemsize + len(data)
                raise UploadInvalid.at(
                    FIELD,
                    f"data truncated: shape {idx_shape} of {source_dtype.name} needs {expected} "
                    f"bytes after the header, found {found}",
                )
            chunk = np.frombuffer(data, source_dtype).reshape(count, *shape[1:])
            stored = _stored_x(chunk, _ChunkOrigin(**vars(origin), offset=start))
            stored = np.ascontiguousarray(stored, dtype=stored_dtype)
            digest.update(stored.data)
            file.write(stored.data)
    if stream.read(1):
        raise UploadInvalid.at(
            FIELD,
            f"data has trailing bytes: shape {idx_shape} of {source_dtype.name} needs "
            f"{shape[0] * sample_values * source_dtype.itemsize} bytes after the header",
        )
    _write_npy(directory / "y.npy", labels_checked.y, digest)
    return StoredIdx(
        samples=shape[0],
        input_shape=[int(n) for n in shape[1:]],
        task=labels_checked.task,
        classes=labels_checked.classes,
        targets=labels_checked.targets,
        bytes=x_bytes + labels_checked.y.nbytes,
        sha256=digest.hexdigest(),
    )
