"""The safetensors header reader: real files from safetensors' own writers, every malformed
header, pickles and .pt files named as such, a header-length bomb, and fuzzing that checks
that only UploadInvalid is ever raised and that whatever passes, safetensors itself loads."""

import io
import json
import pickle
import struct
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import safetensors
import safetensors.numpy
import safetensors.torch
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.checkpoints.safetensors_header import ITEMSIZE, TensorInfo, read_header
from app.errors import UploadInvalid

MIB = 1 << 20


def encode(header: dict[str, Any] | bytes, data: bytes = b"") -> bytes:
    """A file of the given header (a dict, or raw JSON bytes) and data buffer."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def read(data: bytes, **limits: int) -> dict[str, TensorInfo]:
    return read_header(io.BytesIO(data), size=len(data), **limits)


def refused(data: bytes, **limits: int) -> str:
    with pytest.raises(UploadInvalid) as caught:
        read(data, **limits)
    assert [d.field for d in caught.value.details] == ["file"]
    return caught.value.message


def entry(dtype: str, shape: list[int], begin: int, end: int) -> dict[str, Any]:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def one_tensor(**changes: Any) -> bytes:
    """A valid file of one F32 tensor of shape [2, 3], with its entry's fields changed."""
    fields = entry("F32", [2, 3], 0, 24) | changes
    return encode({"w": fields}, bytes(24))


def deserialized(data: bytes) -> dict[str, tuple[str, list[int]]]:
    """What the safetensors library itself reads from a file: name -> (dtype, shape)."""
    deserialize: Callable[[bytes], list[tuple[str, dict[str, Any]]]] = safetensors.deserialize
    loaded = deserialize(data)
    return {name: (tensor["dtype"], tensor["shape"]) for name, tensor in loaded}


def as_declared(tensors: dict[str, TensorInfo]) -> dict[str, tuple[str, list[int]]]:
    return {name: (info.dtype, info.shape) for name, info in tensors.items()}


# --- real files ----------------------------------------------------------------------------


def test_read_header_returns_every_tensor_when_file_is_from_safetensors_numpy() -> None:
    arrays: dict[str, npt.NDArray[Any]] = {
        "0.weight": np.ones((10, 784), dtype=np.float32),
        "0.bias": np.zeros(10, dtype=np.float32),
        "scale": np.array(2.0, dtype=np.float64),
        "empty": np.zeros((0, 3), dtype=np.int64),
        "mask": np.array([True, False]),
        "codes": np.arange(6, dtype=np.uint8).reshape(2, 3),
        "half": np.ones((4,), dtype=np.float16),
        "small": np.ones((3,), dtype=np.int8),
        "shorts": np.ones((3,), dtype=np.int16),
        "ints": np.ones((3,), dtype=np.int32),
    }
    data = safetensors.numpy.save(arrays, metadata={"format": "np", "note": "tiny"})

    tensors = read(data)

    assert as_declared(tensors) == deserialized(data)
    length = struct.unpack("<Q", data[:8])[0]
    declared = json.loads(data[8 : 8 + length])
    assert {name: [info.begin, info.end] for name, info in tensors.items()} == {
        name: value["data_offsets"] for name, value in declared.items() if name != "__metadata__"
    }
    assert tensors["0.weight"] == TensorInfo(
        "F32", [10, 784], *declared["0.weight"]["data_offsets"]
    )
    assert tensors["scale"].numel == 1
    assert tensors["empty"].numel == 0
    assert set(ITEMSIZE) >= {info.dtype for info in tensors.values()}


def test_read_header_lists_tensors_in_data_order_when_file_is_from_safetensors_torch(
    tmp_path: Path,
) -> None:
    state = {
        "1.weight": torch.zeros(10, 784, dtype=torch.bfloat16),
        "1.bias": torch.zeros(10),
        "3.weight": torch.zeros(10, 10, dtype=torch.float16),
        "steps": torch.tensor(7, dtype=torch.int64),
    }
    path = tmp_path / "weights.safetensors"
    safetensors.torch.save_file(state, str(path))

    with path.open("rb") as file:
        tensors = read_header(file, size=path.stat().st_size)

    assert as_declared(tensors) == {
        "1.weight": ("BF16", [10, 784]),
        "1.bias": ("F32", [10]),
        "3.weight": ("F16", [10, 10]),
        "steps": ("I64", []),
    }
    begins = [info.begin for info in tensors.values()]
    assert begins == sorted(begins)
    assert begins[0] == 0


def test_read_header_accepts_a_header_whose_length_starts_with_the_pickle_byte() -> None:
    # 0x80 as the length's low byte is a 128-byte header, not a pickle.
    raw = json.dumps({"w": entry("U8", [2], 0, 2)}).encode()
    raw += b" " * (0x80 - len(raw))
    data = encode(raw, b"ab")
    assert data[0] == 0x80

    assert as_declared(read(data)) == {"w": ("U8", [2])}


def test_read_header_accepts_metadata_of_strings_and_a_padded_header() -> None:
    raw = json.dumps({"__metadata__": {"format": "pt"}, "w": entry("I32", [1], 0, 4)}).encode()

    assert as_declared(read(encode(raw + b"      ", bytes(4)))) == {"w": ("I32", [1])}


# --- malformed files -----------------------------------------------------------------------


def bad_json(text: str, data: bytes = b"") -> bytes:
    return encode(text.encode(), data)


MALFORMED = [
    pytest.param(b"", "0 bytes, shorter than the 8-byte", id="empty"),
    pytest.param(b"\x01\x00\x00", "3 bytes, shorter than the 8-byte", id="short"),
    pytest.param(bytes(8), "header length is 0", id="length-zero"),
    pytest.param(struct.pack("<Q", 100) + b"{}", "past the end of the 10-byte file", id="past-end"),
    pytest.param(struct.pack("<Q", 2 * MIB) + b"{}", "larger than the limit", id="length-huge"),
    pytest.param(encode(b"{\xff}"), "not UTF-8", id="not-utf8"),
    pytest.param(bad_json("[1, 2]"), "not a JSON object", id="json-list"),
    pytest.param(bad_json(" {}"), "not a JSON object", id="leading-space"),
    pytest.param(bad_json('{"w": '), "not valid JSON", id="json-truncated"),
    pytest.param(bad_json("{}\x00"), "not valid JSON", id="json-trailing-nul"),
    pytest.param(bad_json('{"w": NaN}'), "not valid JSON", id="json-nan"),
    pytest.param(bad_json("{" + "[" * 100_000 + "]" * 100_000 + "}"), "JSON", id="deep"),
    pytest.param(bad_json('{"a": 1, "a": 2}'), "names 'a' twice", id="duplicate-key"),
    pytest.param(encode({}), "holds no tensors", id="no-tensors"),
    pytest.param(encode({"__metadata__": {"a": "b"}}), "holds no tensors", id="only-metadata"),
    pytest.param(encode({"w": [1, 2]}), "exactly dtype, shape and data_offsets", id="entry-list"),
    pytest.param(
        encode({"w": {"dtype": "F32", "shape": [1]}}, bytes(4)),
        "exactly dtype, shape and data_offsets",
        id="entry-missing-offsets",
    ),
    pytest.param(
        one_tensor(extra=1), "exactly dtype, shape and data_offsets", id="entry-extra-key"
    ),
    pytest.param(
        one_tensor(dtype="F8_E4M3"),
        "dtype 'F8_E4M3' is not one of F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL",
        id="dtype-unknown",
    ),
    pytest.param(one_tensor(dtype="f32"), "is not one of", id="dtype-lowercase"),
    pytest.param(one_tensor(dtype=4), "dtype 4 is not one of", id="dtype-number"),
    pytest.param(one_tensor(shape=[2, -3]), "shape must be a list", id="shape-negative"),
    pytest.param(one_tensor(shape=[2, 3.0]), "shape must be a list", id="shape-float"),
    pytest.param(one_tensor(shape=[2, True]), "shape must be a list", id="shape-bool"),
    pytest.param(one_tensor(shape="2x3"), "shape must be a list", id="shape-string"),
    pytest.param(one_tensor(shape=[1] * 9), "at most 8", id="shape-9-dims"),
    pytest.param(one_tensor(shape=[0, 2**64]), "shape must be a list", id="shape-over-int64"),
    pytest.param(
        bad_json('{"w": {"dtype": "U8", "shape": [-0], "data_offsets": [0, 0]}}'),
        "shape must be a list",
        id="shape-minus-zero",
    ),
    pytest.param(one_tensor(data_offsets=[0]), "two non-negative integers", id="offsets-one"),
    pytest.param(one_tensor(data_offsets=[24, 0]), "begin <= end", id="offsets-reversed"),
    pytest.param(one_tensor(data_offsets=[-24, 0]), "non-negative", id="offsets-negative"),
    pytest.param(one_tensor(data_offsets=[0, 24.0]), "two non-negative", id="offsets-float"),
    pytest.param(one_tensor(data_offsets=None), "two non-negative", id="offsets-null"),
    pytest.param(
        one_tensor(shape=[2, 2]),
        "shape [2, 2] of F32 takes 16 bytes, but data_offsets [0, 24] hold 24",
        id="size-mismatch",
    ),
    pytest.param(
        encode({"w": entry("U8", [4], 0, 4)}, bytes(3)),
        "is truncated: its tensors take 4 bytes of data, but 3",
        id="truncated",
    ),
    pytest.param(
        encode({"w": entry("U8", [4], 0, 4)}, bytes(5)),
        "has trailing bytes: its tensors take 4 bytes of data, but 5",
        id="padded",
    ),
    pytest.param(
        encode({"a": entry("U8", [4], 0, 4), "b": entry("U8", [4], 2, 6)}, bytes(6)),
        "tensor 'b' at byte 2 of the data overlaps tensor 'a', which ends at byte 4",
        id="overlap",
    ),
    pytest.param(
        encode({"a": entry("U8", [4], 0, 4), "b": entry("U8", [4], 6, 10)}, bytes(10)),
        "tensor 'b' at byte 6 of the data leaves a gap after tensor 'a'",
        id="gap",
    ),
    pytest.param(
        encode({"a": entry("U8", [4], 2, 6)}, bytes(6)),
        "leaves a gap after the header",
        id="gap-at-start",
    ),
    pytest.param(
        encode({"a": entry("U8", [4], 0, 4), "b": entry("U8", [4], 0, 4)}, bytes(4)),
        "overlaps",
        id="same-range",
    ),
    pytest.param(
        encode({"__metadata__": {"a": 1}, "w": entry("U8", [1], 0, 1)}, b"x"),
        "__metadata__ must map strings to strings",
        id="metadata-int",
    ),
    pytest.param(
        encode({"__metadata__": ["a"], "w": entry("U8", [1], 0, 1)}, b"x"),
        "__metadata__ must map strings to strings",
        id="metadata-list",
    ),
    pytest.param(
        encode({"": entry("U8", [1], 0, 1)}, b"x"), "name must be non-empty", id="name-empty"
    ),
    pytest.param(
        encode({"a\x00b": entry("U8", [1], 0, 1)}, b"x"), "control characters", id="name-nul"
    ),
    pytest.param(
        bad_json('{"\\ud800": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}', b"x"),
        "tensor '\\ud800': a tensor name must be",
        id="name-lone-surrogate",
    ),
    pytest.param(
        bad_json(
            '{"__metadata__": {"a": "\\udc00"}, "w": {"dtype": "U8", "shape": [1], '
            '"data_offsets": [0, 1]}}',
            b"x",
        ),
        "__metadata__ must map strings to strings",
        id="metadata-lone-surrogate",
    ),
]


@pytest.mark.parametrize(("data", "says"), MALFORMED)
def test_read_header_raises_upload_invalid_naming_the_problem_when_file_is_malformed(
    data: bytes, says: str
) -> None:
    assert says in refused(data)


def test_read_header_refuses_more_tensors_than_the_limit() -> None:
    header = {f"t{i}": entry("U8", [1], i, i + 1) for i in range(5)}
    data = encode(header, bytes(5))

    assert len(read(data, max_tensors=5)) == 5
    assert "holds 5 tensors, more than the limit of 4" in refused(data, max_tensors=4)


def test_read_header_refuses_a_header_longer_than_the_limit() -> None:
    data = encode({"w": entry("U8", [1], 0, 1)}, b"x")
    length = len(data) - 9

    assert len(read(data, max_header_bytes=length)) == 1
    assert f"larger than the limit of {length - 1}" in refused(data, max_header_bytes=length - 1)


def test_read_header_refuses_a_file_that_ends_before_the_size_it_was_said_to_have() -> None:
    data = encode({"w": entry("U8", [1], 0, 1)}, b"x")

    with pytest.raises(UploadInvalid, match="ends inside its"):
        read_header(io.BytesIO(data[:20]), size=len(data))


def test_read_header_refuses_a_length_bomb_without_allocating_or_reading_it() -> None:
    stream = io.BytesIO(struct.pack("<Q", 2**60) + b"{}")
    tracemalloc.start()
    try:
        with pytest.raises(UploadInvalid, match="header length is 1152921504606846976 bytes"):
            read_header(stream, size=2**61)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < MIB
    assert stream.tell() == 8


# --- pickles and .pt files ------------------------------------------------------------------


class Opens:
    """Unpickling this would create a file: what a malicious "checkpoint" does."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (str(self.path), "w"))


def test_read_header_names_a_pickle_and_never_unpickles_it(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps(Opens(marker))

    message = refused(payload)

    assert "looks like a pickle" in message
    assert "safetensors.torch.save_file" in message
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_read_header_names_a_pickle_of_any_binary_protocol(protocol: int) -> None:
    assert "pickle" in refused(pickle.dumps({"w": [1.0, 2.0]}, protocol=protocol))


def test_read_header_names_a_legacy_torch_save_file_as_a_pickle(tmp_path: Path) -> None:
    path = tmp_path / "legacy.pt"
    torch.save({"w": torch.zeros(3)}, path, _use_new_zipfile_serialization=False)

    assert "pickle" in refused(path.read_bytes())


def test_read_header_names_a_torch_save_file_as_a_pt_file(tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    torch.save({"w": torch.zeros(3)}, path)

    message = refused(path.read_bytes())

    assert ".pt" in message
    assert "torch.save" in message


def test_read_header_names_a_pickle_even_when_shorter_than_8_bytes() -> None:
    assert "pickle" in refused(b"\x80\x04N.")


# --- fuzzing -------------------------------------------------------------------------------


def check_read(data: bytes) -> None:
    """read_header raises nothing but UploadInvalid; what it accepts, safetensors loads."""
    try:
        tensors = read(data)
    except UploadInvalid:
        return
    assert as_declared(tensors) == deserialized(data)


DTYPES = st.sampled_from(sorted(ITEMSIZE))
SHAPES = st.lists(st.integers(0, 4), max_size=3)
# Any text a tensor may be named: UTF-8 without control characters.
NAMES = st.text(
    st.characters(codec="utf-8", exclude_characters=[chr(c) for c in [*range(0x20), 0x7F]]),
    min_size=1,
    max_size=8,
)


@st.composite
def valid_files(draw: st.DrawFn) -> tuple[dict[str, Any], bytes]:
    """A valid header (as a dict) and its data buffer."""
    names = draw(st.lists(NAMES, min_size=1, max_size=4, unique=True))
    header: dict[str, Any] = {}
    offset = 0
    for name in names:
        dtype, shape = draw(DTYPES), draw(SHAPES)
        size = int(np.prod(shape, dtype=np.int64)) * ITEMSIZE[dtype]
        header[name] = entry(dtype, shape, offset, offset + size)
        offset += size
    if draw(st.booleans()):
        header["__metadata__"] = draw(st.dictionaries(NAMES, st.text(max_size=8), max_size=2))
    return header, bytes(offset)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**65), 2**65) | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=6,
)


@given(st.binary(max_size=300))
@settings(max_examples=500, deadline=None)
def test_read_header_raises_only_upload_invalid_when_bytes_are_random(data: bytes) -> None:
    check_read(data)


@given(st.binary(max_size=200), st.integers(0, 300))
@settings(max_examples=500, deadline=None)
def test_read_header_raises_only_upload_invalid_when_length_is_right_and_header_random(
    raw: bytes, data_bytes: int
) -> None:
    check_read(encode(b"{" + raw, bytes(data_bytes)))


@given(valid_files())
@settings(max_examples=200, deadline=None)
def test_read_header_accepts_every_valid_file(file: tuple[dict[str, Any], bytes]) -> None:
    header, data = file
    tensors = read(encode(header, data))

    assert set(tensors) == set(header) - {"__metadata__"}


@given(valid_files(), st.data())
@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_read_header_raises_only_upload_invalid_when_a_valid_header_is_mutated(
    file: tuple[dict[str, Any], bytes], data: st.DataObject
) -> None:
    header, buffer = file
    name = data.draw(st.sampled_from(sorted(header)))
    mutation = data.draw(st.sampled_from(["entry", "field", "key", "buffer", "bytes"]))
    if mutation == "entry":
        header[name] = data.draw(JSON_VALUES)
    elif mutation == "field" and isinstance(header[name], dict) and header[name]:
        field = data.draw(st.sampled_from(sorted(header[name])))
        header[name][field] = data.draw(JSON_VALUES)
    elif mutation == "key":
        header[data.draw(st.text(max_size=6))] = data.draw(JSON_VALUES)
    elif mutation == "buffer":
        buffer = buffer[: data.draw(st.integers(0, len(buffer)))] + data.draw(st.binary(max_size=8))
    encoded = encode(header, buffer)
    if mutation == "bytes":
        at = data.draw(st.integers(0, len(encoded) - 1))
        encoded = encoded[:at] + data.draw(st.binary(max_size=4)) + encoded[at + 1 :]
    check_read(encoded)
