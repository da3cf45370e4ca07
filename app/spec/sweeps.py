"""SweepSpec: a job fanned out into trials across a space of spec fields, pure Python.

A trial is the base spec with a few fields replaced by dotted path (its `config`, e.g.
`{"optimizer.lr": 0.01, "training.batch_size": 128}`). Expanding a sweep into its
configurations is deterministic: the same request always gives the same trials, which is
what lets the service validate every trial before any of them runs.
"""

import itertools
import json
import math
import random
from copy import deepcopy
from typing import Annotated, Any, Literal, Self

from pydantic import Field, JsonValue, model_validator
from typing_extensions import TypeAliasType

from app.spec.base import Pair, Strict
from app.spec.optimization import Target, maximized
from app.spec.schemas import MAX_SEED, NAME_PATTERN, JobSpec

MAX_TRIALS = 256
MAX_PATHS = 16
MAX_VALUES = 64
MAX_PARALLEL = 64
MAX_TOTAL_S = 7 * 24 * 3600.0
MAX_MIN_EPOCHS = 1000
PATH_PATTERN = r"^[a-z_]+(\.[a-z_]+)*$"
# Sampled floats keep 4 significant digits: `0.003162`, not `0.0031622776601683794`.
SAMPLED_DIGITS = 4


class LogUniform(Strict):
    """Sample between the bounds evenly in log space (learning rates, weight decay)."""

    log_uniform: Pair[tuple[Annotated[float, Field(gt=0.0)], Annotated[float, Field(gt=0.0)]]]

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.log_uniform[0] > self.log_uniform[1]:
            raise ValueError("the low bound comes first")
        return self


class Uniform(Strict):
    uniform: Pair[tuple[float, float]]

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.uniform[0] > self.uniform[1]:
            raise ValueError("the low bound comes first")
        return self


Distribution = LogUniform | Uniform
Values = Annotated[list[JsonValue], Field(min_length=1, max_length=MAX_VALUES)] | Distribution


class Grid(Strict):
    """Every combination of the listed values."""

    name: Literal["grid"]


class RandomSearch(Strict):
    """`trials` configurations drawn with `seed` (lists without repeats when they allow)."""

    name: Literal["random"]
    trials: int | None = Field(
        None, ge=1, le=MAX_TRIALS, description="Default: the budget's max_trials."
    )
    seed: int = Field(0, ge=0, le=MAX_SEED)


class Halving(Strict):
    """Successive halving, asynchronous (ASHA): every trial trains `min_epochs`, then the
    best 1/eta of those that finished a rung continue for eta times the epochs, up to the
    base spec's epochs; the rest stop there. A promoted trial resumes from its checkpoint."""

    name: Literal["halving"]
    trials: int | None = Field(
        None, ge=1, le=MAX_TRIALS, description="Sample this many; default: the whole grid."
    )
    seed: int = Field(0, ge=0, le=MAX_SEED)
    eta: int = Field(3, ge=2, le=8)
    min_epochs: int = Field(1, ge=1, le=MAX_MIN_EPOCHS)


Strategy = TypeAliasType(
    "Strategy", Annotated[Grid | RandomSearch | Halving, Field(discriminator="name")]
)


class Objective(Strict):
    """What ranks trials: time to a target (those that miss it rank after, by their best
    value of the target's metric), or a metric's best value."""

    minimize: Literal["time_to_target", "val_loss", "val_mae", "train_loss"] | None = None
    maximize: Literal["val_accuracy"] | None = None
    target: Target | None = Field(None, description="With minimize time_to_target only.")

    @model_validator(mode="after")
    def _one_goal(self) -> Self:
        if (self.minimize is None) == (self.maximize is None):
            raise ValueError("give minimize or maximize, not both")
        if (self.minimize == "time_to_target") != (self.target is not None):
            raise ValueError("minimize time_to_target needs a target, and only it has one")
        return self

    @property
    def metric(self) -> str:
        """The metric trials are compared by (for time to target: when they miss it)."""
        if self.target is not None:
            return self.target.metric
        metric = self.minimize or self.maximize
        assert metric is not None
        return metric

    @property
    def higher_is_better(self) -> bool:
        return maximized(self.metric)


class Budget(Strict):
    max_trials: int = Field(20, ge=1, le=MAX_TRIALS, description="Configurations to try.")
    max_parallel: int = Field(
        2, ge=1, le=MAX_PARALLEL, description="At most this many trials queued or running."
    )
    max_total_s: float | None = Field(
        None,
        gt=0.0,
        le=MAX_TOTAL_S,
        description="After this long the sweep cancels its open trials and ranks what ran.",
    )


class SweepSpec(Strict):
    name: str = Field("sweep", min_length=1, max_length=200, pattern=NAME_PATTERN)
    base: JobSpec
    space: dict[
        Annotated[str, Field(max_length=200, pattern=PATH_PATTERN)],
        Values,
    ] = Field(
        min_length=1,
        max_length=MAX_PATHS,
        description='Spec fields by dotted path: a list of values (`"optimizer.name": '
        '["sgd", "adam"]`), or a distribution for random and halving (`{"log_uniform": '
        '[1e-4, 1e-1]}`). A value may be a whole object (`"optimizer": [{...}, {...}]`).',
    )
    strategy: Strategy = Grid(name="grid")
    objective: Objective
    budget: Budget = Budget()
    include_base: bool = Field(
        False, description="Run the base spec itself as trial 0, to compare against."
    )


class SpaceInvalid(ValueError):
    """A space that cannot be expanded: `path` is the request field to name."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path, self.message = path, message


def configurations(spec: SweepSpec) -> list[dict[str, Any]]:
    """Every trial's config, in trial order (the base's own `{}` first when included)."""
    strategy = spec.strategy
    sampled = strategy if not isinstance(strategy, Grid) and strategy.trials else None
    if sampled is None and isinstance(strategy, RandomSearch):
        sampled = RandomSearch(name="random", trials=spec.budget.max_trials, seed=strategy.seed)
    if sampled is None:
        _lists_only(spec.space)
    trials = sampled.trials if sampled else _grid_size(spec.space)
    assert trials is not None
    # Counted before anything is expanded: a grid of 64^16 is refused, not built.
    total = trials + spec.include_base
    if total > spec.budget.max_trials:
        raise SpaceInvalid(
            "budget.max_trials",
            f"the space gives {total} trials, more than max_trials "
            f"{spec.budget.max_trials}; raise it, or sample with random or halving `trials`",
        )
    configs = _sample(spec.space, trials, sampled.seed) if sampled else _grid(spec.space)
    return [{}, *configs] if spec.include_base else configs


def _grid_size(space: dict[str, Any]) -> int:
    return math.prod(len(values) for values in space.values())


def _lists_only(space: dict[str, Any]) -> None:
    for path, values in space.items():
        if not isinstance(values, list):
            raise SpaceInvalid(
                f"space.{path}",
                "a grid needs a list of values; sample a distribution with random or "
                "halving and `trials`",
            )


def _grid(space: dict[str, Any]) -> list[dict[str, Any]]:
    paths = list(space)
    return [dict(zip(paths, combo, strict=True)) for combo in itertools.product(*space.values())]


def _sample(space: dict[str, Any], trials: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    paths = list(space)
    if all(isinstance(values, list) for values in space.values()):
        # Lists only: draw distinct combinations, by their index in the grid.
        sizes = [len(space[path]) for path in paths]
        total = math.prod(sizes)
        configs = []
        for index in rng.sample(range(total), min(trials, total)):
            config = {}
            for path, size in zip(reversed(paths), reversed(sizes), strict=True):
                index, position = divmod(index, size)
                config[path] = space[path][position]
            configs.append({path: config[path] for path in paths})
        return configs
    return [{path: _draw(space[path], rng) for path in paths} for _ in range(trials)]


def _draw(values: list[Any] | Distribution, rng: random.Random) -> Any:
    if isinstance(values, list):
        return values[rng.randrange(len(values))]
    if isinstance(values, LogUniform):
        low, high = values.log_uniform
        drawn = math.exp(rng.uniform(math.log(low), math.log(high)))
    else:
        low, high = values.uniform
        drawn = rng.uniform(low, high)
    return float(f"{drawn:.{SAMPLED_DIGITS}g}")


def known_path(full: dict[str, Any], path: str) -> bool:
    """Whether `path` names a field of the spec `full` (dumped with every default)."""
    node: Any = full
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def apply(raw: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """The base spec's JSON with each of `config`'s dotted paths set to its value."""
    spec = deepcopy(raw)
    for path, value in config.items():
        *parents, leaf = path.split(".")
        node = spec
        for part in parents:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[leaf] = deepcopy(value)
    return spec


def shown(value: Any) -> str:
    """A config value as a short, stable label (objects as compact JSON)."""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
