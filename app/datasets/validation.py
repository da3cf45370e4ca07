"""The rules every dataset obeys, whatever format it was uploaded in: one check, one place.

Each format's reader only turns bytes into an (x, y) pair; `check_arrays` decides whether
that pair can be trained on and converts it to the dtypes that are stored.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

from app.errors import UploadInvalid

Task = Literal["classification", "regression"]

MIN_SAMPLES: Final = 2
MIN_CLASSES: Final = 2
# Labels become class indices; anything past uint16 is far beyond any real class count and
# usually means the wrong column or file was uploaded as labels.
LABEL_MIN: Final = 0
LABEL_MAX: Final = 65535
# bool, signed and unsigned integers, floats: what a net can take as input or target.
NUMERIC_KINDS: Final = "biuf"
# One-byte integers (uint8 images above all) are stored as they came, a quarter of their
# float32 size and exact in it; the trainer converts on the device. Wider integers become
# float32, which every torch op takes (uint16 tensors lack min(), for one).
COMPACT_INT_BYTES: Final = 1
FLOAT32_MAX: Final = float(np.finfo(np.float32).max)

Where = Callable[[Sequence[int]], str]


@dataclass(frozen=True, eq=False)
class Origin:
    """Where the arrays came from, so an error names the request field and the exact place."""

    x_field: str
    y_field: str
    x_name: str = "x"
    y_name: str = "y"

    def where_x(self, index: Sequence[int]) -> str:
        return f"{self.x_name}[{', '.join(map(str, index))}]"

    def where_y(self, index: Sequence[int]) -> str:
        return f"{self.y_name}[{', '.join(map(str, index))}]"


@dataclass(frozen=True, eq=False)
class CheckedArrays:
    """A pair that passed every rule, in its stored dtypes, and what it holds."""

    x: npt.NDArray[Any]
    y: npt.NDArray[Any]
    task: Task
    classes: int | None
    targets: int | None

    @property
    def input_shape(self) -> list[int]:
        return [int(size) for size in self.x.shape[1:]]


def check_arrays(
    x: npt.NDArray[Any], y: npt.NDArray[Any], *, task: Task, origin: Origin
) -> CheckedArrays:
    """Check an (x, y) pair for `task` and convert it for storage; UploadInvalid otherwise.

    x: (N, features...) of any numeric dtype, stored as float32 unless it is a small integer
    type. Classification y: (N,) integer-valued class indices, stored int64. Regression y:
    (N,) or (N, k), stored float32. Every value finite, N >= 2 and the same in x and y.
    """
    _check_shapes(x, y, task, origin)
    x_out = _stored_x(x, origin)
    if task == "classification":
        labels = _class_indices(y, origin)
        classes = int(labels.max()) + 1
        return CheckedArrays(x_out, labels, task, classes=classes, targets=None)
    values = _as_float32(y, origin.y_field, origin.where_y)
    targets = 1 if values.ndim == 1 else int(values.shape[1])
    return CheckedArrays(x_out, values, task, classes=None, targets=targets)


def _check_shapes(x: npt.NDArray[Any], y: npt.NDArray[Any], task: Task, origin: Origin) -> None:
    for array, field, name in (
        (x, origin.x_field, origin.x_name),
        (y, origin.y_field, origin.y_name),
    ):
        if array.dtype.kind not in NUMERIC_KINDS:
            raise UploadInvalid.at(
                field,
                f"{name} has dtype {array.dtype}; it must be numeric (bool, integer or float)",
            )
    if x.ndim < 2:
        raise UploadInvalid.at(
            origin.x_field,
            f"{origin.x_name} needs at least 2 dimensions (N, features...), found shape {x.shape}",
        )
    y_dims = "1 dimension (N,)" if task == "classification" else "1 or 2 dimensions (N,) or (N, k)"
    if y.ndim not in ((1,) if task == "classification" else (1, 2)):
        raise UploadInvalid.at(
            origin.y_field, f"{task} needs {origin.y_name} of {y_dims}, found shape {y.shape}"
        )
    if x.shape[0] != y.shape[0]:
        raise UploadInvalid.at(
            origin.y_field,
            f"{origin.y_name} has {y.shape[0]} samples but {origin.x_name} has {x.shape[0]}; "
            "the counts must match",
        )
    if y.shape[0] < MIN_SAMPLES:
        raise UploadInvalid.at(
            origin.y_field, f"needs at least {MIN_SAMPLES} samples, found {y.shape[0]}"
        )
    for array, field, name in (
        (x, origin.x_field, origin.x_name),
        (y, origin.y_field, origin.y_name),
    ):
        if 0 in array.shape[1:]:
            raise UploadInvalid.at(
                field, f"{name} has shape {array.shape}; every dimension must be at least 1"
            )


def _first(mask: npt.NDArray[np.bool_]) -> tuple[int, ...] | None:
    """The index of the first True in `mask`, without listing every True."""
    if not mask.any():
        return None
    return tuple(int(i) for i in np.unravel_index(int(mask.argmax()), mask.shape))


def _check_finite(array: npt.NDArray[Any], field: str, where: Where, hint: str = "") -> None:
    if array.dtype.kind != "f":
        return
    index = _first(~np.isfinite(array))
    if index is not None:
        raise UploadInvalid.at(
            field, f"{where(index)} is {array[index]}; every value must be finite{hint}"
        )


def _as_float32(array: npt.NDArray[Any], field: str, where: Where) -> npt.NDArray[np.float32]:
    _check_finite(array, field, where)
    if array.dtype == np.float32:
        return array.astype(np.float32, copy=False)
    # Finite in float64 but past float32's range becomes inf in the conversion: expected,
    # and reported as the upload's error just below rather than warned about.
    with np.errstate(over="ignore"):
        converted = array.astype(np.float32)
    _check_finite(converted, field, where, f" (float32 holds magnitudes up to {FLOAT32_MAX:.3g})")
    return converted


def _stored_x(x: npt.NDArray[Any], origin: Origin) -> npt.NDArray[Any]:
    if x.dtype.kind == "b":
        return x.astype(np.uint8)
    if x.dtype.kind in "iu" and x.dtype.itemsize <= COMPACT_INT_BYTES:
        return x.astype(x.dtype.newbyteorder("="), copy=False)
    return _as_float32(x, origin.x_field, origin.where_x)


def _class_indices(y: npt.NDArray[Any], origin: Origin) -> npt.NDArray[np.int64]:
    field, where = origin.y_field, origin.where_y
    if y.dtype.kind == "f":
        _check_finite(y, field, where)
        index = _first(y != np.floor(y))
        if index is not None:
            raise UploadInvalid.at(
                field,
                f"label {y[index]} at {where(index)} is not an integer; classification labels "
                "are class indices",
            )
    index = _first((y < LABEL_MIN) | (y > LABEL_MAX))
    if index is not None:
        raise UploadInvalid.at(
            field,
            f"label {y[index]} at {where(index)} is outside [{LABEL_MIN}, {LABEL_MAX}]",
        )
    labels = y.astype(np.int64)
    low, high = int(labels.min()), int(labels.max())
    if low == high:
        raise UploadInvalid.at(
            field,
            f"needs at least {MIN_CLASSES} classes, but every label is {low}; "
            "for continuous targets use task=regression",
        )
    return labels
