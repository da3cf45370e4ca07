"""Expanding a sweep into trials: deterministic, bounded, and shaped by the strategy."""

from typing import Any

import pytest

from app.spec.sweeps import SpaceInvalid, SweepSpec, apply, configurations, known_path
from tests.client import small_job

OBJECTIVE = {"maximize": "val_accuracy"}


def spec(space: dict[str, Any], strategy: dict[str, Any], **extra: Any) -> SweepSpec:
    return SweepSpec.model_validate(
        {"base": small_job(), "space": space, "strategy": strategy, "objective": OBJECTIVE, **extra}
    )


def test_grid_is_every_combination_in_the_order_given() -> None:
    grid = spec({"optimizer.lr": [0.1, 0.01], "training.batch_size": [8, 16, 32]}, {"name": "grid"})

    configs = configurations(grid)

    assert configs == [
        {"optimizer.lr": lr, "training.batch_size": b} for lr in (0.1, 0.01) for b in (8, 16, 32)
    ]


def test_random_search_is_the_same_for_the_same_seed_and_distinct_over_lists() -> None:
    space = {"optimizer.lr": [0.1, 0.03, 0.01, 0.003], "training.batch_size": [8, 16, 32, 64]}

    first = configurations(spec(space, {"name": "random", "trials": 6, "seed": 7}))
    again = configurations(spec(space, {"name": "random", "trials": 6, "seed": 7}))
    other = configurations(spec(space, {"name": "random", "trials": 6, "seed": 8}))

    assert first == again
    assert first != other
    assert len({tuple(c.values()) for c in first}) == 6


def test_random_search_samples_a_log_uniform_inside_its_bounds_deterministically() -> None:
    space = {"optimizer.lr": {"log_uniform": [1e-4, 1e-1]}}

    drawn = spec(space, {"name": "random", "trials": 50, "seed": 1}, budget={"max_trials": 50})
    configs = configurations(drawn)

    lrs = [c["optimizer.lr"] for c in configs]
    assert all(1e-4 <= lr <= 1e-1 for lr in lrs)
    # Evenly in log space: about as many below 1e-2.5 as above.
    below = sum(1 for lr in lrs if lr < 10**-2.5)
    assert 15 <= below <= 35
    assert configs == configurations(drawn)


def test_random_trials_default_to_max_trials_and_stop_at_the_grid_size() -> None:
    space = {"training.batch_size": [8, 16, 32]}

    assert len(configurations(spec(space, {"name": "random"}, budget={"max_trials": 2}))) == 2
    assert len(configurations(spec(space, {"name": "random", "trials": 3}))) == 3


def test_halving_without_trials_runs_the_grid_and_the_base_comes_first_when_included() -> None:
    space = {"training.batch_size": [8, 16]}

    configs = configurations(spec(space, {"name": "halving"}, include_base=True))

    assert configs == [{}, {"training.batch_size": 8}, {"training.batch_size": 16}]


def test_a_distribution_in_a_grid_names_its_path() -> None:
    grid = spec({"optimizer.lr": {"uniform": [0.1, 0.2]}}, {"name": "grid"})

    with pytest.raises(SpaceInvalid) as raised:
        configurations(grid)

    assert raised.value.path == "space.optimizer.lr"


def test_apply_sets_dotted_paths_on_a_copy() -> None:
    base = small_job()

    applied = apply(base, {"optimizer.lr": 0.5, "schedule.name": "cosine"})

    assert applied["optimizer"]["lr"] == 0.5
    assert applied["schedule"] == {"name": "cosine"}
    assert base["optimizer"]["lr"] == 0.05


def test_known_path_follows_the_full_spec() -> None:
    full = SweepSpec.model_validate(
        {"base": small_job(), "space": {"optimizer.lr": [0.1]}, "objective": OBJECTIVE}
    ).base.model_dump(mode="json")

    assert known_path(full, "optimizer.lr")
    assert known_path(full, "training.precision")  # a default is still a field
    assert not known_path(full, "optimizer.momentun")
    assert not known_path(full, "init.checkpoint")  # init is null in this base
