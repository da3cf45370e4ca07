"""Measuring and ranking trials, and what the varied fields did: pure functions of the
trials' jobs, so the leaderboard is the same whoever computes it."""

from dataclasses import dataclass

from app.jobs.status import JobStatus
from app.orm import Job, Trial
from app.spec.sweeps import Objective, SweepSpec, shown
from app.sweeps.schemas import PathEffect, ValueEffect


@dataclass(frozen=True)
class Measure:
    """What a trial's jobs so far say: epochs trained, the time the target took (from
    the first training step, across rungs) and the best value of the objective's metric."""

    epochs: int
    reached: bool
    time_to_target_s: float | None
    best: float | None
    compute_s: float


def _elapsed(job: Job) -> float:
    """A finished rung's training wall time: its epochs and checkpoints."""
    timings = job.timings or {}
    return float(sum(timings.get("epoch_s") or []) + (timings.get("checkpoint_s") or 0.0))


def compute_s(trial_jobs: list[Job]) -> float:
    """What the jobs cost: their training and evaluation time."""
    total = 0.0
    for job in trial_jobs:
        timings = job.timings or {}
        total += float(timings.get("train_s") or 0.0) + float(timings.get("eval_s") or 0.0)
    return total


def measure(objective: Objective, trial_jobs: list[Job]) -> Measure | None:
    """The trial as its succeeded jobs left it; None before its first job succeeded."""
    done = [job for job in trial_jobs if job.status == JobStatus.SUCCEEDED and job.result]
    if not done:
        return None
    metric, higher = objective.metric, objective.higher_is_better
    # The jobs' best rows are by the target's metric (else validation), so the final
    # row may hold a better value of another metric: the better of the two counts.
    rows = [(job.result or {}).get(kind, {}) for job in done for kind in ("best", "final")]
    values = [float(row[metric]) for row in rows if isinstance(row.get(metric), int | float)]
    best = (max(values) if higher else min(values)) if values else None
    reached, time_to_target, before = False, None, 0.0
    for job in done:
        timings = job.timings or {}
        if timings.get("time_to_target_s") is not None:
            reached, time_to_target = True, before + float(timings["time_to_target_s"])
            break
        before += _elapsed(job)
    compute = compute_s(trial_jobs)
    last = done[-1].result or {}
    epochs = int(last.get("final", {}).get("epoch", last.get("epochs", 0)))
    return Measure(epochs, reached, time_to_target, best, compute)


def rank_key(objective: Objective, measured: Measure) -> tuple[int, float]:
    """Smaller is better: reached the target first (by time), then by the metric."""
    if objective.target is not None and measured.reached:
        assert measured.time_to_target_s is not None
        return 0, measured.time_to_target_s
    if measured.best is None:
        return 2, 0.0
    return 1, -measured.best if objective.higher_is_better else measured.best


def effects(spec: SweepSpec, trials: list[Trial], measured: dict[int, Measure]) -> list[PathEffect]:
    """Per varied field, each value's best result among the trials that tried it."""
    objective = spec.objective
    effects = []
    for path in spec.space:
        groups: dict[str, list[Measure]] = {}
        for trial in trials:
            if path in trial.config and trial.position in measured:
                groups.setdefault(shown(trial.config[path]), []).append(measured[trial.position])
        values = []
        for value, group in groups.items():
            top = min(group, key=lambda m: rank_key(objective, m))
            times = [m.time_to_target_s for m in group if m.time_to_target_s is not None]
            values.append(
                (
                    rank_key(objective, top),
                    ValueEffect(
                        value=value,
                        trials=len(group),
                        reached=len(times),
                        best_time_to_target_s=min(times) if times else None,
                        best=top.best,
                    ),
                )
            )
        values.sort(key=lambda pair: pair[0])
        effects.append(PathEffect(path=path, values=[effect for _, effect in values]))
    return effects


def said(objective: Objective, effect: PathEffect) -> str:
    first, last = effect.values[0], effect.values[-1]

    def result(value: ValueEffect) -> str:
        if objective.target is not None and value.best_time_to_target_s is not None:
            return f"{value.best_time_to_target_s:.2f} s to the target"
        if value.best is None:
            return "no result"
        return f"best {objective.metric} {value.best:.4g}"

    return (
        f"{effect.path}: {first.value} did best ({result(first)}); "
        f"{last.value} worst ({result(last)})"
    )
