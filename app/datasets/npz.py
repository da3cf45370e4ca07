"""Read an npz upload (`np.savez(file, x=..., y=...)`) without trusting a byte of it.

Nothing is ever unpickled: arrays are loaded with allow_pickle=False, and an object array is
refused from its header before any data is read. Memory stays bounded by `max_bytes`: the
zip's central directory is capped before zipfile parses it, and every member's declared
size (the .npy headers of x and y, the uncompressed size of anything else) is added up
before a single array is inflated, so a zip bomb is refused from its headers alone.
"""

import io
import math
import os
import struct
import zipfile
import zlib
from typing import IO, Any, BinaryIO, Final

import numpy as np
import numpy.typing as npt

from app.errors import UploadInvalid, UploadTooLarge

FIELD: Final = "file"
ARRAYS: Final = ("x", "y")
NPY_SUFFIX: Final = ".npy"
ZIP_MAGIC: Final = b"PK"
# The end-of-central-directory record: signature, fixed fields, then the comment.
END_RECORD_MAGIC: Final = b"PK\x05\x06"
END_RECORD_BYTES: Final = 22
NPY_MAGIC: Final = b"\x93NUMPY"
# np.savez of x and y writes a central directory of about 200 bytes; a megabyte is room for
# thousands of members, while millions of them would cost gigabytes of ZipInfo objects.
CENTRAL_DIRECTORY_MAX_BYTES: Final = 1 << 20
# numpy's own default cap on a .npy header (max_header_size); read here before numpy does,
# because numpy reads the whole declared header before it checks the length.
NPY_HEADER_MAX_BYTES: Final = 10_000
NPY_HEADER_LENGTH_BYTES: Final = {(1, 0): 2, (2, 0): 4}
# Names listed in an error before the list is cut short.
NAMES_SHOWN: Final = 10

# zipfile, zlib and numpy's header parser signal a malformed archive through all of these.
_ARCHIVE_ERRORS: Final = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    struct.error,
    EOFError,
    OSError,
    ValueError,
    NotImplementedError,  # an unsupported compression method
    RuntimeError,  # an encrypted member
)


class _DirectoryTooLarge(Exception):
    pass


class _CappedReads:
    """The upload as zipfile sees it: seekable, but while `cap` is set no single read may
    exceed it. zipfile reads the whole central directory in one read before it builds an
    object per entry, so the cap refuses a huge directory before that happens; the cap is
    lifted once the directory is parsed."""

    def __init__(self, stream: BinaryIO, size: int, cap: int | None) -> None:
        self._stream = stream
        self._size = size
        self.cap = cap

    def read(self, size: int = -1) -> bytes:
        want = self._size - self._stream.tell() if size < 0 else size
        if self.cap is not None and want > self.cap:
            raise _DirectoryTooLarge
        return self._stream.read(want)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._stream.seek(offset, whence)

    def tell(self) -> int:
        return self._stream.tell()

    def seekable(self) -> bool:
        return True


def _size_of(stream: BinaryIO) -> int:
    stream.seek(0, os.SEEK_END)
    size = stream.tell()
    stream.seek(0)
    return size


def _names(names: list[str]) -> str:
    shown = ", ".join(repr(name) for name in names[:NAMES_SHOWN])
    more = len(names) - NAMES_SHOWN
    return shown + (f" and {more} more" if more > 0 else "") if names else "nothing"


def _open_archive(stream: BinaryIO, size: int) -> zipfile.ZipFile:
    head = stream.read(len(NPY_MAGIC))
    stream.seek(0)
    if not head:
        raise UploadInvalid.at(FIELD, "file is empty")
    if head == NPY_MAGIC:
        raise UploadInvalid.at(
            FIELD,
            "file is a single .npy array; an npz upload is a zip of arrays x and y, "
            "as written by np.savez(file, x=x, y=y)",
        )
    if not head.startswith(ZIP_MAGIC):
        raise UploadInvalid.at(FIELD, "not an npz file: it is not a zip archive")
    capped = _CappedReads(stream, size, CENTRAL_DIRECTORY_MAX_BYTES)
    try:
        archive = zipfile.ZipFile(capped)
    except _DirectoryTooLarge as exc:
        raise UploadInvalid.at(
            FIELD,
            f"the zip directory is larger than {CENTRAL_DIRECTORY_MAX_BYTES} bytes; "
            "an npz upload holds arrays x and y",
        ) from exc
    except _ARCHIVE_ERRORS as exc:
        raise UploadInvalid.at(FIELD, f"not a readable npz (zip) file: {exc}") from exc
    capped.cap = None
    _refuse_trailing_bytes(stream, size, archive)
    return archive


def _refuse_trailing_bytes(stream: BinaryIO, size: int, archive: zipfile.ZipFile) -> None:
    """The archive ends with its end-of-directory record and comment, as IDX files end with
    their last value: zipfile would skip bytes after it, and they would be stored unread."""
    tail = END_RECORD_BYTES + len(archive.comment)
    stream.seek(max(0, size - tail))
    record = stream.read(tail)
    stream.seek(0)
    ends = record.startswith(END_RECORD_MAGIC) and record.endswith(archive.comment)
    if not ends or int.from_bytes(record[20:22], "little") != len(archive.comment):
        archive.close()
        raise UploadInvalid.at(FIELD, "has trailing bytes after the end of the npz archive")


def _read_header(member: IO[bytes], name: str) -> tuple[tuple[int, ...], np.dtype[Any]]:
    version = np.lib.format.read_magic(member)
    length_bytes = NPY_HEADER_LENGTH_BYTES.get(version)
    if length_bytes is None:
        raise UploadInvalid.at(
            FIELD,
            f"array {name!r} uses .npy format version {version[0]}.{version[1]}; "
            "np.save writes 1.0 or 2.0 for numeric arrays",
        )
    length = member.read(length_bytes)
    declared = int.from_bytes(length, "little")
    if declared > NPY_HEADER_MAX_BYTES:
        raise UploadInvalid.at(
            FIELD,
            f"array {name!r} declares a {declared}-byte .npy header; "
            f"the limit is {NPY_HEADER_MAX_BYTES}",
        )
    header = io.BytesIO(length + member.read(declared))
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(header)
    else:
        shape, _, dtype = np.lib.format.read_array_header_2_0(header)
    if dtype.hasobject:
        raise UploadInvalid.at(
            FIELD,
            f"array {name!r} holds Python objects (dtype {dtype}); only numeric arrays are "
            "accepted, and uploads are never unpickled",
        )
    return tuple(int(size) for size in shape), dtype


def _declared_bytes(archive: zipfile.ZipFile, max_bytes: int) -> dict[str, zipfile.ZipInfo]:
    """Find x.npy and y.npy, add up every member's declared size, and refuse past the limit."""
    members: dict[str, zipfile.ZipInfo] = {}
    seen: set[str] = set()
    total = 0
    for info in archive.infolist():
        if info.filename in seen:
            raise UploadInvalid.at(FIELD, f"the archive holds {info.filename!r} twice")
        seen.add(info.filename)
        array = info.filename.removesuffix(NPY_SUFFIX)
        if info.filename.endswith(NPY_SUFFIX) and array in ARRAYS:
            with archive.open(info) as member:
                shape, dtype = _read_header(member, array)
            total += math.prod(shape) * dtype.itemsize
            members[array] = info
        else:
            total += info.file_size
    if total > max_bytes:
        raise UploadTooLarge(
            f"{FIELD}: the archive's arrays declare {total} bytes; the limit is {max_bytes}"
        )
    for array in ARRAYS:
        if array not in members:
            raise UploadInvalid.at(
                FIELD,
                f"the archive has no array {array!r} ({array}{NPY_SUFFIX}); it holds "
                f"{_names(archive.namelist())}. Save it with np.savez(file, x=x, y=y)",
            )
    return members


def read_npz(stream: BinaryIO, *, max_bytes: int) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """Read arrays x and y from an npz upload, as stored; `max_bytes` bounds the file, and
    separately everything its members declare. `check_arrays` judges what they hold."""
    size = _size_of(stream)
    if size > max_bytes:
        raise UploadTooLarge(f"{FIELD} is {size} bytes; the limit is {max_bytes}")
    with _open_archive(stream, size) as archive:
        try:
            members = _declared_bytes(archive, max_bytes)
            x, y = (_load(archive, members[array]) for array in ARRAYS)
        except _ARCHIVE_ERRORS as exc:
            raise UploadInvalid.at(FIELD, f"not a readable npz file: {exc}") from exc
    return x, y


def _load(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> npt.NDArray[Any]:
    with archive.open(info) as member:
        loaded = np.load(member, allow_pickle=False)
        if member.read(1):
            raise UploadInvalid.at(
                FIELD, f"member {info.filename!r} has trailing bytes after its array"
            )
    if not isinstance(loaded, np.ndarray):
        raise UploadInvalid.at(FIELD, f"member {info.filename!r} is not a .npy array")
    return loaded
