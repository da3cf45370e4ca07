"""check_arrays: the rules every format's (x, y) pair obeys, and the dtypes it is stored in."""

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from app.datasets.validation import (
    LABEL_MAX,
    CheckedArrays,
    Origin,
    Task,
    check_arrays,
)
from app.errors import UploadInvalid

ORIGIN = Origin(x_field="images", y_field="labels", x_name="images", y_name="labels")


def features(samples: int = 4, dtype: Any = np.float32) -> npt.NDArray[Any]:
    return np.arange(samples * 3).reshape(samples, 3).astype(dtype)


def check(x: npt.NDArray[Any], y: npt.NDArray[Any], task: Task = "classification") -> CheckedArrays:
    return check_arrays(x, y, task=task, origin=ORIGIN)


def invalid(
    x: npt.NDArray[Any], y: npt.NDArray[Any], task: Task = "classification"
) -> UploadInvalid:
    with pytest.raises(UploadInvalid) as caught:
        check(x, y, task)
    assert len(caught.value.details) == 1
    return caught.value


def field_of(error: UploadInvalid) -> str:
    return error.details[0].field


# --- what passes, and how it is stored ---------------------------------------------------


def test_classification_stores_int64_labels_and_counts_classes_from_the_largest() -> None:
    checked = check(features(), np.array([0, 2, 1, 2], np.uint8))

    assert checked.y.dtype == np.int64
    assert checked.classes == 3
    assert checked.targets is None
    assert checked.task == "classification"
    assert checked.input_shape == [3]


def test_classification_accepts_integer_valued_float_labels() -> None:
    checked = check(features(), np.array([0.0, 1.0, 3.0, 1.0]))

    np.testing.assert_array_equal(checked.y, [0, 1, 3, 1])
    assert checked.classes == 4


def test_classification_accepts_labels_at_both_ends_of_range() -> None:
    checked = check(features(2), np.array([0, LABEL_MAX], np.int32))

    np.testing.assert_array_equal(checked.y, [0, LABEL_MAX])
    assert checked.classes == LABEL_MAX + 1


def test_classification_accepts_bool_labels_as_two_classes() -> None:
    checked = check(features(2), np.array([True, False]))

    assert checked.classes == 2
    assert checked.y.dtype == np.int64


def test_regression_stores_float32_targets_and_counts_one_target_for_one_dim() -> None:
    checked = check(features(), np.array([0.5, -1.25, 3.0, 1e6]), "regression")

    assert checked.y.dtype == np.float32
    assert checked.y.shape == (4,)
    assert checked.targets == 1
    assert checked.classes is None


def test_regression_counts_k_targets_for_two_dim_targets() -> None:
    checked = check(features(), np.ones((4, 5), np.int64), "regression")

    assert checked.y.dtype == np.float32
    assert checked.targets == 5


def test_regression_accepts_constant_targets() -> None:
    assert check(features(), np.zeros(4), "regression").targets == 1


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_one_byte_integer_features_keep_their_dtype(dtype: Any) -> None:
    x = features(dtype=dtype)

    checked = check(x, np.array([0, 1, 0, 1]))

    assert checked.x.dtype == dtype
    np.testing.assert_array_equal(checked.x, x)


@pytest.mark.parametrize(
    "dtype", [np.int16, ">u2", np.int32, np.int64, np.uint64, np.float16, np.float64, ">f8"]
)
def test_other_features_are_stored_as_float32(dtype: Any) -> None:
    checked = check(features(dtype=dtype), np.array([0, 1, 0, 1]))

    assert checked.x.dtype == np.float32
    np.testing.assert_array_equal(checked.x, features())


def test_bool_features_are_stored_as_uint8() -> None:
    checked = check(np.array([[True, False], [False, True]]), np.array([0, 1]))

    assert checked.x.dtype == np.uint8
    np.testing.assert_array_equal(checked.x, [[1, 0], [0, 1]])


def test_image_features_keep_their_shape_as_input_shape() -> None:
    checked = check(np.zeros((2, 1, 5, 7), np.uint8), np.array([0, 1]))

    assert checked.input_shape == [1, 5, 7]


# --- what is refused, naming the field and the place --------------------------------------


def test_rejects_mismatched_counts_naming_labels_and_both_counts() -> None:
    error = invalid(features(3), np.array([0, 1, 0, 1]))

    assert field_of(error) == "labels"
    assert "labels has 4 samples but images has 3" in error.message


def test_rejects_fewer_than_two_samples() -> None:
    error = invalid(features(1), np.array([0]))

    assert field_of(error) == "labels"
    assert "at least 2 samples, found 1" in error.message


def test_rejects_one_dim_features() -> None:
    error = invalid(np.zeros(3, np.float32), np.array([0, 1, 0]))

    assert field_of(error) == "images"
    assert "at least 2 dimensions" in error.message


def test_rejects_features_with_an_empty_dimension() -> None:
    error = invalid(np.zeros((3, 0), np.float32), np.array([0, 1, 0]))

    assert field_of(error) == "images"
    assert "(3, 0)" in error.message


def test_classification_rejects_two_dim_labels() -> None:
    error = invalid(features(), np.zeros((4, 1), np.uint8))

    assert field_of(error) == "labels"
    assert "1 dimension (N,)" in error.message


def test_regression_rejects_three_dim_targets() -> None:
    error = invalid(features(), np.zeros((4, 1, 1)), "regression")

    assert field_of(error) == "labels"
    assert "(N,) or (N, k)" in error.message


def test_regression_rejects_targets_with_no_columns() -> None:
    error = invalid(features(), np.zeros((4, 0)), "regression")

    assert field_of(error) == "labels"
    assert "(4, 0)" in error.message


@pytest.mark.parametrize(
    ("x", "y", "field"),
    [
        pytest.param(features(2).astype(np.complex64), np.array([0, 1]), "images", id="complex-x"),
        pytest.param(np.array([["a"], ["b"]]), np.array([0, 1]), "images", id="string-x"),
        pytest.param(features(2), np.array(["a", "b"]), "labels", id="string-y"),
        pytest.param(
            features(2),
            np.array(["2020-01-01", "2020-01-02"], "datetime64[D]"),
            "labels",
            id="date-y",
        ),
    ],
)
def test_rejects_non_numeric_dtypes_naming_the_array(
    x: npt.NDArray[Any], y: npt.NDArray[Any], field: str
) -> None:
    error = invalid(x, y)

    assert field_of(error) == field
    assert "must be numeric" in error.message


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_rejects_non_finite_features_naming_the_first_index(bad: float) -> None:
    x = features(dtype=np.float64)
    x[2, 1] = bad
    x[3, 0] = bad

    error = invalid(x, np.array([0, 1, 0, 1]))

    assert field_of(error) == "images"
    assert "images[2, 1]" in error.message
    assert "finite" in error.message


def test_rejects_features_past_float32_range_naming_the_index() -> None:
    x = features(dtype=np.float64)
    x[1, 2] = 1e300

    error = invalid(x, np.array([0, 1, 0, 1]))

    assert "images[1, 2]" in error.message
    assert "float32" in error.message


@pytest.mark.parametrize("task", ["classification", "regression"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_rejects_non_finite_labels_for_either_task(task: Task, bad: float) -> None:
    error = invalid(features(), np.array([0.0, 1.0, bad, 1.0]), task)

    assert field_of(error) == "labels"
    assert "labels[2]" in error.message
    assert "finite" in error.message


def test_regression_rejects_targets_past_float32_range() -> None:
    error = invalid(features(), np.array([0.0, -1e39, 1.0, 2.0]), "regression")

    assert "labels[1]" in error.message
    assert "float32" in error.message


def test_classification_rejects_fractional_labels_naming_value_and_index() -> None:
    error = invalid(features(), np.array([0.0, 1.0, 3.5, 1.0]))

    assert field_of(error) == "labels"
    assert "label 3.5 at labels[2] is not an integer" in error.message


@pytest.mark.parametrize("value", [-1, LABEL_MAX + 1])
def test_classification_rejects_labels_outside_range_naming_value(value: int) -> None:
    error = invalid(features(3), np.array([0, value, 1], np.int32))

    assert field_of(error) == "labels"
    assert f"label {value} at labels[1] is outside [0, {LABEL_MAX}]" in error.message


def test_classification_rejects_huge_float_labels_before_converting_them() -> None:
    error = invalid(features(2), np.array([0.0, 1e30]))

    assert "outside" in error.message


def test_classification_rejects_a_single_class_even_when_it_is_not_zero() -> None:
    error = invalid(features(), np.full(4, 5, np.uint8))

    assert field_of(error) == "labels"
    assert "at least 2 classes" in error.message
    assert "regression" in error.message
