"""Read a csv upload of numeric features and one label column, streamed row by row.

The file is never held whole: bytes are counted as they are read (UploadTooLarge past
`max_bytes`), each line is capped, and values go straight into compact arrays.
"""

import array
import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO, Final

import numpy as np
import numpy.typing as npt

from app.datasets.validation import Origin
from app.errors import UploadInvalid, UploadTooLarge

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

FIELD: Final = "file"
LABEL_FIELD: Final = "label_column"
# A row of 100,000 features fits several times over; a file that is one endless line (or
# a quoted field that never closes) is refused before it fills memory.
MAX_LINE_CHARS: Final = 1 << 20
# A cell shown in an error is cut to this many characters.
CELL_SHOWN: Final = 40
# Names listed in an error before the list is cut short.
NAMES_SHOWN: Final = 10
# Excel writes a byte-order mark; utf-8-sig drops it and reads plain UTF-8 the same.
ENCODING: Final = "utf-8-sig"


class _CountedBytes(io.RawIOBase):
    """The upload's bytes, failing with UploadTooLarge once more than `limit` are read."""

    def __init__(self, stream: BinaryIO, limit: int) -> None:
        self._stream = stream
        self._limit = limit
        self._count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: "WriteableBuffer") -> int:
        target = memoryview(buffer).cast("B")
        # One byte past the limit is enough to prove the excess.
        want = min(len(target), self._limit + 1 - self._count)
        data = self._stream.read(max(want, 0))
        self._count += len(data)
        if self._count > self._limit:
            raise UploadTooLarge(f"{FIELD} is larger than the limit of {self._limit} bytes")
        target[: len(data)] = data
        return len(data)


@dataclass(frozen=True, eq=False)
class CsvOrigin(Origin):
    """Errors found after parsing point at the row and column of the csv they came from."""

    rows: Sequence[int] = ()
    feature_names: Sequence[str] = ()
    label_name: str = ""

    def where_x(self, index: Sequence[int]) -> str:
        return f"row {self.rows[index[0]]}, column {self.feature_names[index[1]]}"

    def where_y(self, index: Sequence[int]) -> str:
        return f"row {self.rows[index[0]]}, column {self.label_name}"


def _lines(text: io.TextIOBase) -> Iterator[str]:
    line_number = 0
    while line := text.readline(MAX_LINE_CHARS):
        line_number += 1
        if len(line) == MAX_LINE_CHARS and not line.endswith(("\n", "\r")):
            raise UploadInvalid.at(
                FIELD, f"line {line_number} is longer than {MAX_LINE_CHARS} characters"
            )
        yield line


def _label_index(first: list[str], header: bool, label_column: str | None) -> int:
    if label_column is None:
        return len(first) - 1
    if header:
        names = [name.strip() for name in first]
        found = [i for i, name in enumerate(names) if name == label_column.strip()]
        if len(found) > 1:
            raise UploadInvalid.at(
                LABEL_FIELD, f"column {label_column!r} appears {len(found)} times in the header"
            )
        if not found:
            shown = ", ".join(repr(n) for n in names[:NAMES_SHOWN])
            more = len(names) - NAMES_SHOWN
            raise UploadInvalid.at(
                LABEL_FIELD,
                f"no column {label_column!r} in the header, which has {shown}"
                + (f" and {more} more" if more > 0 else "")
                + " (label_column is a column name, or with header=false a 0-based index)",
            )
        return found[0]
    text = label_column.strip()
    if not text.isdecimal() or int(text) >= len(first):
        raise UploadInvalid.at(
            LABEL_FIELD,
            f"{label_column!r} is not a column: without a header, label_column is a 0-based "
            f"index below {len(first)}",
        )
    return int(text)


def _not_a_number(row: list[str], line: int, names: Sequence[str]) -> UploadInvalid:
    for column, cell in enumerate(row):
        try:
            float(cell)
        except ValueError:
            shown = cell if len(cell) <= CELL_SHOWN else cell[:CELL_SHOWN] + "..."
            return UploadInvalid.at(
                FIELD, f"row {line}, column {names[column]}: {shown!r} is not a number"
            )
    raise AssertionError("a row that failed to parse has a cell that is not a number")


@dataclass
class _Columns:
    """What the first row tells: how many columns, their names, which one is the label."""

    width: int
    names: list[str]
    label: int


def _columns(first: list[str], line: int, header: bool, label_column: str | None) -> _Columns:
    if len(first) < 2:
        raise UploadInvalid.at(
            FIELD,
            f"row {line} has {len(first)} column; a csv dataset needs at least one feature "
            "column and a label column",
        )
    names = [repr(name.strip()) for name in first] if header else list(map(str, range(len(first))))
    return _Columns(len(first), names, _label_index(first, header, label_column))


def read_csv(
    stream: BinaryIO, *, label_column: str | None, header: bool, max_bytes: int
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float64], CsvOrigin]:
    """Read a csv into float32 features (N, F) and float64 labels (N,), as stored.

    `label_column` names a header column, or without a header is a 0-based index; the
    default is the last column. Rows are numbered by line, the header being line 1; blank
    lines are skipped. Also returns how later errors point into the file.
    """
    counted = io.BufferedReader(_CountedBytes(stream, max_bytes))
    reader = csv.reader(_lines(io.TextIOWrapper(counted, ENCODING, newline="")), strict=True)
    features, labels, rows = array.array("f"), array.array("d"), array.array("q")
    columns: _Columns | None = None
    try:
        for row in reader:
            if not row:
                continue
            if columns is None:
                columns = _columns(row, reader.line_num, header, label_column)
                if header:
                    continue
            if len(row) != columns.width:
                raise UploadInvalid.at(
                    FIELD,
                    f"row {reader.line_num} has {len(row)} columns; expected {columns.width}, "
                    "as in the first row",
                )
            try:
                values = [float(cell) for cell in row]
            except ValueError:
                raise _not_a_number(row, reader.line_num, columns.names) from None
            labels.append(values.pop(columns.label))
            features.extend(values)
            rows.append(reader.line_num)
    except UnicodeDecodeError as exc:
        raise UploadInvalid.at(FIELD, f"the file is not UTF-8 text ({exc.reason})") from exc
    except csv.Error as exc:
        raise UploadInvalid.at(FIELD, f"row {reader.line_num}: {exc}") from exc
    if columns is None:
        raise UploadInvalid.at(FIELD, "the csv has no rows")
    x = np.frombuffer(features, dtype=np.float32).reshape(len(labels), columns.width - 1)
    y = np.frombuffer(labels, dtype=np.float64)
    names = columns.names
    origin = CsvOrigin(
        x_field=FIELD,
        y_field=FIELD,
        x_name="features",
        y_name="labels",
        rows=rows,
        feature_names=names[: columns.label] + names[columns.label + 1 :],
        label_name=names[columns.label],
    )
    return x, y, origin
