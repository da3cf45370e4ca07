"""Job data: synthetic arrays, seeded splits, train-only standardisation, and index batching."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from app.spec.schemas import SyntheticData
from worker.trainer.data import (
    Split,
    batches,
    eval_batches,
    prepare,
    split_indices,
    synthetic_arrays,
)

CPU = torch.device("cpu")


def arange_split(n: int) -> Split:
    """A split whose x and y both name each sample's index, so batches can be audited."""
    return Split(torch.arange(n, dtype=torch.float32).unsqueeze(1), torch.arange(n))


def test_synthetic_arrays_are_identical_for_the_same_seed() -> None:
    data = SyntheticData(samples=64, classes=4, input_shape=[2, 3], seed=7)

    x1, y1 = synthetic_arrays(data)
    x2, y2 = synthetic_arrays(data)

    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)


def test_synthetic_arrays_differ_across_seeds() -> None:
    x1, y1 = synthetic_arrays(SyntheticData(samples=64, classes=4, input_shape=[5], seed=0))
    x2, y2 = synthetic_arrays(SyntheticData(samples=64, classes=4, input_shape=[5], seed=1))

    assert not np.array_equal(x1, x2)
    assert not np.array_equal(y1, y2)


@pytest.mark.parametrize(
    ("samples", "classes", "input_shape"),
    [(64, 4, [1, 4, 4]), (100, 3, [7]), (17, 5, [2, 2, 2, 2]), (16, 16, [1])],
)
def test_synthetic_arrays_have_spec_shapes_and_balanced_labels(
    samples: int, classes: int, input_shape: list[int]
) -> None:
    x, y = synthetic_arrays(
        SyntheticData(samples=samples, classes=classes, input_shape=input_shape)
    )

    assert x.shape == (samples, *input_shape)
    assert x.dtype == np.float32
    assert y.shape == (samples,)
    assert y.dtype == np.int64
    counts = np.bincount(y, minlength=classes)
    assert len(counts) == classes
    assert counts.max() - counts.min() <= 1
    assert np.isfinite(x).all()


def test_synthetic_classes_have_distinct_centres() -> None:
    x, y = synthetic_arrays(SyntheticData(samples=3000, classes=3, input_shape=[16]))

    means = np.stack([x[y == c].mean(axis=0) for c in range(3)])

    # Noise of std 2 averages out over 1000 samples; unit-variance centres stay apart.
    for a in range(3):
        for b in range(a + 1, 3):
            assert np.linalg.norm(means[a] - means[b]) > 1.0


@settings(max_examples=100, deadline=None)
@given(
    samples=st.integers(2, 500),
    val_fraction=st.floats(0.0, 0.9),
    seed=st.integers(0, 2**31 - 1),
)
def test_split_indices_are_disjoint_and_cover_every_sample(
    samples: int, val_fraction: float, seed: int
) -> None:
    train, val = split_indices(samples, val_fraction, seed)

    np.testing.assert_array_equal(np.sort(np.concatenate([train, val])), np.arange(samples))
    assert len(train) >= 1
    if val_fraction > 0:
        assert 1 <= len(val) <= samples - 1


@pytest.mark.parametrize(
    ("samples", "val_fraction", "expected_val"),
    [
        (100, 0.2, 20),
        (1000, 0.123, 123),
        (10, 0.26, 3),  # 2.6 rounds up
        (10, 0.24, 2),  # 2.4 rounds down
        (16, 0.01, 1),  # at least one validation sample
        (16, 0.9, 14),
        (2, 0.9, 1),  # at least one training sample
    ],
)
def test_split_indices_round_validation_size(
    samples: int, val_fraction: float, expected_val: int
) -> None:
    train, val = split_indices(samples, val_fraction, seed=0)

    assert len(val) == expected_val
    assert len(train) == samples - expected_val


def test_split_indices_with_zero_val_fraction_gives_no_validation() -> None:
    train, val = split_indices(50, 0.0, seed=3)

    assert len(val) == 0
    np.testing.assert_array_equal(np.sort(train), np.arange(50))


def test_split_indices_are_seeded() -> None:
    first = split_indices(200, 0.25, seed=1)
    again = split_indices(200, 0.25, seed=1)
    other = split_indices(200, 0.25, seed=2)

    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[1], other[1])


def test_prepare_standardises_each_feature_with_training_statistics_only() -> None:
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((400, 3, 2)) * 3.0 + 5.0).astype(np.float32)
    y = np.arange(400) % 4
    train_idx, val_idx = split_indices(400, 0.25, seed=11)
    x[val_idx] += 1000.0  # would drag the mean and std far off if validation leaked in

    splits = prepare(x, y, val_fraction=0.25, seed=11, normalize="standard", device=CPU)

    assert splits.val is not None
    train_x = splits.train.x
    assert train_x.shape == (300, 3, 2)
    np.testing.assert_allclose(train_x.mean(dim=0).numpy(), 0.0, atol=1e-4)
    np.testing.assert_allclose(train_x.std(dim=0).numpy(), 1.0, atol=1e-4)
    mean, std = x[train_idx].mean(axis=0), x[train_idx].std(axis=0, ddof=1)
    expected_val = (x[val_idx] - mean) / std
    np.testing.assert_allclose(splits.val.x.numpy(), expected_val, rtol=1e-4)


def test_prepare_keeps_each_label_with_its_sample() -> None:
    x = np.arange(90, dtype=np.float32).reshape(30, 3)
    y = np.arange(30) % 7

    splits = prepare(x, y, val_fraction=0.3, seed=4, normalize="none", device=CPU)

    assert splits.val is not None
    for split in (splits.train, splits.val):
        rows = (split.x[:, 0] / 3).long()
        torch.testing.assert_close(split.y, torch.from_numpy(y)[rows])
        assert split.x.dtype == torch.float32
    assert len(splits.train) + len(splits.val) == 30


def test_prepare_without_normalisation_leaves_values_unchanged() -> None:
    x = np.arange(40, dtype=np.float32).reshape(20, 2) * 10
    y = np.zeros(20, dtype=np.int64)
    train_idx, val_idx = split_indices(20, 0.2, seed=0)

    splits = prepare(x, y, val_fraction=0.2, seed=0, normalize="none", device=CPU)

    assert splits.val is not None
    np.testing.assert_array_equal(splits.train.x.numpy(), x[train_idx])
    np.testing.assert_array_equal(splits.val.x.numpy(), x[val_idx])


def test_prepare_with_zero_val_fraction_has_no_validation_split() -> None:
    x = np.random.default_rng(0).standard_normal((32, 4)).astype(np.float32)

    splits = prepare(
        x, np.arange(32) % 2, val_fraction=0.0, seed=0, normalize="standard", device=CPU
    )

    assert splits.val is None
    assert len(splits.train) == 32


@pytest.mark.parametrize(("n", "batch_size"), [(50, 7), (64, 16), (10, 9), (33, 1)])
def test_batches_yield_every_index_once_per_epoch_with_smaller_last_batch(
    n: int, batch_size: int
) -> None:
    split = arange_split(n)
    generator = torch.Generator().manual_seed(0)

    for _ in range(2):  # each call is one epoch from the same generator
        epoch = list(batches(split, batch_size, generator))

        sizes = [len(y) for _, y in epoch]
        full, last = divmod(n, batch_size)
        assert sizes == [batch_size] * full + ([last] if last else [])
        seen = torch.cat([y for _, y in epoch])
        assert sorted(seen.tolist()) == list(range(n))
        for x, y in epoch:
            torch.testing.assert_close(x[:, 0].long(), y)


def test_batches_shuffle_differently_each_epoch() -> None:
    split = arange_split(100)
    generator = torch.Generator().manual_seed(0)

    first = torch.cat([y for _, y in batches(split, 10, generator)])
    second = torch.cat([y for _, y in batches(split, 10, generator)])

    assert not torch.equal(first, torch.arange(100))
    assert not torch.equal(first, second)


def test_batches_are_reproducible_from_the_generator_seed() -> None:
    split = arange_split(100)

    orders = [
        torch.cat([y for _, y in batches(split, 10, torch.Generator().manual_seed(5))])
        for _ in range(2)
    ]

    assert torch.equal(orders[0], orders[1])


@pytest.mark.parametrize("batch_size", [20, 21, 1000])
def test_batches_yield_one_full_batch_when_batch_size_covers_split(batch_size: int) -> None:
    split = arange_split(20)

    epoch = list(batches(split, batch_size, torch.Generator().manual_seed(0)))

    assert len(epoch) == 1
    x, y = epoch[0]
    assert sorted(y.tolist()) == list(range(20))
    torch.testing.assert_close(x[:, 0].long(), y)


def test_eval_batches_cover_split_in_order_with_smaller_last_batch() -> None:
    split = arange_split(23)

    epoch = list(eval_batches(split, 10))

    assert [len(y) for _, y in epoch] == [10, 10, 3]
    assert torch.equal(torch.cat([y for _, y in epoch]), torch.arange(23))


def test_auto_normalisation_scales_uint8_images_and_standardises_the_rest() -> None:
    images = np.arange(2 * 1 * 2 * 2 * 10, dtype=np.uint8).reshape(20, 1, 2, 2)
    labels = np.arange(20) % 2

    scaled = prepare(images, labels, val_fraction=0.0, seed=0, normalize="auto", device=CPU)
    standard = prepare(
        images.astype(np.float32), labels, val_fraction=0.0, seed=0, normalize="auto", device=CPU
    )

    # The split shuffles the samples; the values are what /255 makes of them.
    np.testing.assert_allclose(
        np.sort(scaled.train.x.numpy().ravel()), np.sort(images.ravel() / 255.0), rtol=1e-6
    )
    np.testing.assert_allclose(standard.train.x.mean(dim=0).numpy(), 0.0, atol=1e-5)
