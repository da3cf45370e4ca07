"""csv parsing: header or not, the label column by name or index, every malformed file, and
errors that point at the row and column, also when check_arrays finds them."""

import io
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from app.datasets.csv import MAX_LINE_CHARS, CsvOrigin, read_csv
from app.datasets.validation import CheckedArrays, Task, check_arrays
from app.errors import UploadInvalid, UploadTooLarge

LIMIT = 10 * 1024 * 1024
IRIS = """sepal_length,sepal_width,species,petal_length
5.1,3.5,0,1.4
4.9,3.0,0,1.4
6.3,3.3,2,6.0
5.8,2.7,1,4.1
"""


def read(
    text: str | bytes,
    *,
    label_column: str | None = None,
    header: bool = True,
    max_bytes: int = LIMIT,
) -> tuple[npt.NDArray[Any], npt.NDArray[Any], CsvOrigin]:
    data = text.encode() if isinstance(text, str) else text
    return read_csv(io.BytesIO(data), label_column=label_column, header=header, max_bytes=max_bytes)


def checked(text: str, task: Task = "classification") -> CheckedArrays:
    x, y, origin = read(text)
    return check_arrays(x, y, task=task, origin=origin)


def invalid(
    text: str | bytes,
    field: str = "file",
    *,
    label_column: str | None = None,
    header: bool = True,
) -> UploadInvalid:
    with pytest.raises(UploadInvalid) as caught:
        read(text, label_column=label_column, header=header)
    assert [d.field for d in caught.value.details] == [field]
    return caught.value


def test_read_csv_takes_the_label_column_by_name_and_the_rest_as_features() -> None:
    x, y, _ = read(IRIS, label_column="species")

    assert x.dtype == np.float32
    assert x.shape == (4, 3)
    np.testing.assert_array_equal(x[2], np.array([6.3, 3.3, 6.0], np.float32))
    np.testing.assert_array_equal(y, [0, 0, 2, 1])


def test_read_csv_takes_the_last_column_as_label_by_default() -> None:
    x, y, _ = read(IRIS)

    np.testing.assert_array_equal(y, [1.4, 1.4, 6.0, 4.1])
    np.testing.assert_array_equal(x[:, 2], [0, 0, 2, 1])


def test_read_csv_without_header_takes_the_label_column_by_index() -> None:
    x, y, _ = read("1,10,0\n2,20,1\n3,30,0\n", label_column="1", header=False)

    np.testing.assert_array_equal(y, [10, 20, 30])
    np.testing.assert_array_equal(x, [[1, 0], [2, 1], [3, 0]])


def test_read_csv_reads_bom_crlf_quotes_blank_lines_and_spaces() -> None:
    text = '\ufeffa,"b"\r\n\r\n"1.5", 0 \r\n2e3,1\r\n\r\n'

    x, y, _ = read(text)

    np.testing.assert_array_equal(x, np.array([[1.5], [2000]], np.float32))
    np.testing.assert_array_equal(y, [0, 1])


def test_read_csv_returns_no_samples_for_a_header_alone() -> None:
    x, y, _ = read("a,b,c\n")

    assert x.shape == (0, 2)
    assert y.shape == (0,)


def test_read_csv_rejects_a_cell_that_is_not_a_number_naming_row_and_column() -> None:
    text = IRIS.replace("4.9,3.0", "4.9,abc")

    message = invalid(text).message

    assert "row 3, column 'sepal_width': 'abc' is not a number" in message


def test_read_csv_names_columns_by_index_without_a_header() -> None:
    message = invalid("1,2,0\n1,x,1\n", header=False).message

    assert "row 2, column 1: 'x' is not a number" in message


def test_read_csv_counts_rows_by_line_past_blank_lines() -> None:
    message = invalid("a,b\n1,0\n\n\n2,zero\n").message

    assert "row 5, column 'b'" in message


def test_read_csv_shortens_a_long_bad_cell() -> None:
    message = invalid("a,b\n1," + "z" * 500 + "\n").message

    assert "z" * 40 + "..." in message
    assert "z" * 41 not in message


def test_read_csv_rejects_a_missing_label_column_naming_it_and_the_columns() -> None:
    message = invalid(IRIS, field="label_column", label_column="class").message

    assert "no column 'class'" in message
    assert "'sepal_width'" in message


def test_read_csv_with_header_takes_label_column_as_a_name_not_an_index() -> None:
    assert "no column '2'" in invalid(IRIS, field="label_column", label_column="2").message


@pytest.mark.parametrize("label_column", ["species", "3", "-1", "1.0"])
def test_read_csv_without_header_rejects_a_label_column_that_is_not_an_index(
    label_column: str,
) -> None:
    message = invalid(
        "1,2,0\n3,4,1\n", field="label_column", label_column=label_column, header=False
    ).message

    assert "0-based index below 3" in message


def test_read_csv_rejects_an_ambiguous_label_column() -> None:
    message = invalid("a,y,y\n1,2,3\n", field="label_column", label_column="y").message

    assert "appears 2 times" in message


def test_read_csv_rejects_a_row_of_another_width() -> None:
    message = invalid("a,b,c\n1,2,3\n4,5\n").message

    assert "row 3 has 2 columns; expected 3" in message


def test_read_csv_rejects_a_file_of_one_column() -> None:
    assert "at least one feature column" in invalid("y\n1\n2\n").message


@pytest.mark.parametrize("text", ["", "\n\n"])
def test_read_csv_rejects_a_file_without_rows(text: str) -> None:
    assert "no rows" in invalid(text).message


def test_read_csv_rejects_text_that_is_not_utf8() -> None:
    assert "not UTF-8" in invalid(b"a,b\n1,2\n\xff\xfe,1\n").message


@pytest.mark.parametrize("text", ['a,b\n1,"2\n', 'a,b\n1,"2"x\n'])
def test_read_csv_rejects_malformed_quoting_naming_the_row(text: str) -> None:
    assert "row " in invalid(text).message


def test_read_csv_rejects_an_endless_line() -> None:
    assert "longer than" in invalid("1," * MAX_LINE_CHARS).message


def test_read_csv_stops_reading_once_past_the_limit() -> None:
    stream = io.BytesIO(b"a,b\n" + b"1,0\n" * 1_000_000)

    with pytest.raises(UploadTooLarge):
        read_csv(stream, label_column=None, header=True, max_bytes=1000)

    assert stream.tell() <= 1001


def test_read_csv_accepts_a_file_exactly_at_the_limit() -> None:
    data = b"a,b\n1,0\n2,1\n"

    x, _, _ = read(data, max_bytes=len(data))

    assert x.shape == (2, 1)


# --- what check_arrays finds later still points into the file ------------------------------


def test_check_points_at_row_and_column_of_a_non_finite_feature() -> None:
    with pytest.raises(UploadInvalid) as caught:
        checked("a,b,c\n1,2,0\n3,nan,1\n")

    assert "row 3, column 'b' is nan" in caught.value.message
    assert [d.field for d in caught.value.details] == ["file"]


def test_check_points_at_row_and_column_of_a_fractional_label() -> None:
    with pytest.raises(UploadInvalid) as caught:
        checked("a,y\n1,0\n2,1\n3,3.5\n")

    assert "label 3.5 at row 4, column 'y' is not an integer" in caught.value.message


def test_check_accepts_integer_valued_float_labels_for_classification() -> None:
    result = checked("a,y\n1,0.0\n2,1\n3,2.0\n")

    assert result.classes == 3
    np.testing.assert_array_equal(result.y, [0, 1, 2])


def test_check_makes_regression_targets_float32() -> None:
    result = checked("a,y\n1,0.25\n2,-1.5\n", "regression")

    assert result.targets == 1
    assert result.y.dtype == np.float32
    np.testing.assert_array_equal(result.y, [0.25, -1.5])
