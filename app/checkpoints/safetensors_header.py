"""Read and check the header of a safetensors file from an untrusted upload, in pure Python.

The format: an 8-byte little-endian header length N, N bytes of UTF-8 JSON naming every
tensor's dtype, shape and byte range, then the data buffer. The header is checked so that
whatever passes also loads with the safetensors library: every byte range matches its
dtype and shape, and the ranges tile the data buffer exactly. Nothing is read before its
length is known to be within bounds, and no data bytes are read at all.
"""

import json
import math
import struct
from dataclasses import dataclass
from typing import Any, BinaryIO, Final

from app.errors import UploadInvalid

FIELD: Final = "file"
LENGTH_BYTES: Final = 8
METADATA_KEY: Final = "__metadata__"
# The header of a model with thousands of tensors is a few hundred kilobytes.
MAX_HEADER_BYTES: Final = 1 << 20
MAX_TENSORS: Final = 10_000
MAX_DIMS: Final = 8
# torch sizes are int64; the safetensors library reads them as u64.
MAX_DIM_SIZE: Final = 2**63 - 1
ITEMSIZE: Final = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
}
ENTRY_KEYS: Final = frozenset({"dtype", "shape", "data_offsets"})
# A name shown in an error is cut to this many characters.
NAME_SHOWN: Final = 80

PICKLE_MAGIC: Final = 0x80
ZIP_MAGIC: Final = b"PK\x03\x04"
HOW_TO_SAVE: Final = (
    "upload safetensors instead: safetensors.torch.save_file(model.state_dict(), "
    '"weights.safetensors")'
)


@dataclass(frozen=True)
class TensorInfo:
    """One tensor as the header declares it: dtype, shape, and its byte range in the data."""

    dtype: str
    shape: list[int]
    begin: int
    end: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def _invalid(message: str) -> UploadInvalid:
    return UploadInvalid.at(FIELD, message)


def _shown(name: str) -> str:
    return repr(name if len(name) <= NAME_SHOWN else name[:NAME_SHOWN] + "...")


def _wrong_kind(head: bytes) -> str | None:
    """What a file that is not safetensors looks like, when it is a common mistake."""
    if head.startswith(ZIP_MAGIC):
        return (
            "this looks like a zip archive such as a PyTorch .pt/.pth file (torch.save), "
            f"not safetensors; .pt files are pickles and are never loaded: {HOW_TO_SAVE}"
        )
    if head[:1] == bytes([PICKLE_MAGIC]):
        return (
            "this looks like a pickle (such as a legacy PyTorch .pt file), not safetensors; "
            f"pickles can run code when loaded and are never accepted: {HOW_TO_SAVE}"
        )
    return None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _invalid(f"the header names {_shown(key)} twice")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _parse_int(text: str) -> int | float:
    # The safetensors library reads -0 as a float, so it must not pass as the integer 0.
    return -0.0 if text == "-0" else int(text)


def _read_json(
    head: bytes, stream: BinaryIO, *, size: int, max_header_bytes: int
) -> tuple[int, dict[str, Any]]:
    """The header length and the header, from the file's first 8 bytes and the stream after."""
    if len(head) < LENGTH_BYTES or size < LENGTH_BYTES:
        found = min(len(head), size)
        raise _invalid(
            f"the file is {found} bytes, shorter than the 8-byte header length that starts "
            "every safetensors file"
        )
    (length,) = struct.unpack("<Q", head)
    if length == 0:
        raise _invalid("the header length is 0; a safetensors header is a JSON object")
    if length > max_header_bytes:
        raise _invalid(
            f"the header length is {length} bytes, larger than the limit of {max_header_bytes}"
        )
    if LENGTH_BYTES + length > size:
        raise _invalid(f"the header length is {length} bytes, past the end of the {size}-byte file")
    raw = stream.read(length)
    if len(raw) != length:
        raise _invalid(f"the file ends inside its {length}-byte header")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _invalid(f"the header is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    if not text.startswith("{"):
        raise _invalid("the header is not a JSON object")
    try:
        header = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_constant=_no_constant,
            parse_int=_parse_int,
        )
    # RecursionError: JSON nested thousands deep; ValueError: bad JSON, or an integer
    # with more digits than Python converts.
    except (ValueError, RecursionError) as exc:
        raise _invalid(f"the header is not valid JSON ({str(exc)[:200]})") from None
    if not isinstance(header, dict):
        raise _invalid("the header is not a JSON object")
    return length, header


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_unicode(text: str) -> bool:
    """False for a lone surrogate, which JSON can escape (\\ud800) but UTF-8 cannot hold."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_metadata(metadata: Any) -> None:
    if not isinstance(metadata, dict) or not all(
        isinstance(value, str) and _is_unicode(key) and _is_unicode(value)
        for key, value in metadata.items()
    ):
        raise _invalid(f"{METADATA_KEY} must map strings to strings")


def _is_name(name: str) -> bool:
    return (
        bool(name)
        and _is_unicode(name)
        and not any(ord(char) < 0x20 or ord(char) == 0x7F for char in name)
    )


def _tensor(name: str, entry: Any) -> TensorInfo:
    where = f"tensor {_shown(name)}"
    if not _is_name(name):
        raise _invalid(f"{where}: a tensor name must be non-empty text without control characters")
    if not isinstance(entry, dict) or set(entry) != ENTRY_KEYS:
        raise _invalid(f"{where} must be an object with exactly dtype, shape and data_offsets")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not isinstance(dtype, str) or dtype not in ITEMSIZE:
        shown = _shown(dtype) if isinstance(dtype, str) else json.dumps(dtype)[:NAME_SHOWN]
        raise _invalid(f"{where}: dtype {shown} is not one of {', '.join(ITEMSIZE)}")
    if (
        not isinstance(shape, list)
        or len(shape) > MAX_DIMS
        or not all(_is_int(dim) and 0 <= dim <= MAX_DIM_SIZE for dim in shape)
    ):
        raise _invalid(f"{where}: shape must be a list of at most {MAX_DIMS} non-negative integers")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(_is_int(offset) and offset >= 0 for offset in offsets)
        or offsets[0] > offsets[1]
    ):
        raise _invalid(
            f"{where}: data_offsets must be two non-negative integers [begin, end], begin <= end"
        )
    info = TensorInfo(dtype=dtype, shape=shape, begin=offsets[0], end=offsets[1])
    needed = info.numel * ITEMSIZE[dtype]
    if info.end - info.begin != needed:
        raise _invalid(
            f"{where}: shape {shape} of {dtype} takes {needed} bytes, but data_offsets "
            f"[{info.begin}, {info.end}] hold {info.end - info.begin}"
        )
    return info


def _check_tiling(tensors: dict[str, TensorInfo], data_bytes: int) -> None:
    """The byte ranges, in order, must cover the data buffer exactly once."""
    covered, previous = 0, None
    for name, info in tensors.items():
        if info.begin != covered:
            problem = "overlaps" if info.begin < covered else "leaves a gap after"
            after = f"tensor {_shown(previous)}" if previous is not None else "the header"
            raise _invalid(
                f"tensor {_shown(name)} at byte {info.begin} of the data {problem} {after}, "
                f"which ends at byte {covered}"
            )
        covered, previous = info.end, name
    if covered != data_bytes:
        problem = "is truncated" if covered > data_bytes else "has trailing bytes"
        raise _invalid(
            f"the file {problem}: its tensors take {covered} bytes of data, "
            f"but {data_bytes} follow the header"
        )


def read_header(
    stream: BinaryIO,
    *,
    size: int,
    max_header_bytes: int = MAX_HEADER_BYTES,
    max_tensors: int = MAX_TENSORS,
) -> dict[str, TensorInfo]:
    """The tensors of a `size`-byte safetensors file read from its start, in data order.

    Raises UploadInvalid (field `file`) for anything the safetensors format does not allow,
    naming pickles and PyTorch .pt files when that is what the file is.
    """
    head = stream.read(LENGTH_BYTES)
    try:
        length, header = _read_json(head, stream, size=size, max_header_bytes=max_header_bytes)
    except UploadInvalid:
        wrong = _wrong_kind(head)
        if wrong is not None:
            raise _invalid(wrong) from None
        raise
    metadata = header.pop(METADATA_KEY, None)
    if metadata is not None:
        _check_metadata(metadata)
    if not header:
        raise _invalid("the file holds no tensors")
    if len(header) > max_tensors:
        raise _invalid(
            f"the file holds {len(header)} tensors, more than the limit of {max_tensors}"
        )
    tensors = [(name, _tensor(name, entry)) for name, entry in header.items()]
    # sorted is stable: zero-byte tensors at one offset keep the header's order.
    ordered = dict(sorted(tensors, key=lambda item: (item[1].begin, item[1].end)))
    _check_tiling(ordered, size - LENGTH_BYTES - length)
    return ordered
