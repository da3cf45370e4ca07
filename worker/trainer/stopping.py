"""Why a training loop ends before its last epoch: the job diverged, or it was asked to
stop (and saved a checkpoint to go on from)."""

import math
from dataclasses import dataclass


class Diverged(Exception):
    """The loss became NaN or infinite: the job's own failure, not the worker's."""


class Stopped(Exception):
    """The trainer was asked to stop: it saved a checkpoint where it was, and the job goes
    on from there elsewhere (or, when cancelled, can be resumed from it)."""


@dataclass
class StopRequest:
    """Set from outside (a signal handler) to ask for a checkpoint and a stop at the next
    step; the loop reads one attribute per step, which costs nothing measurable."""

    requested: bool = False


def finite(metrics: dict[str, float], epoch: int) -> dict[str, float]:
    """The metrics, unless one is NaN or infinite: then the job has diverged."""
    for name, value in metrics.items():
        if not math.isfinite(value):
            raise Diverged(f"{name} became {value} in epoch {epoch}")
    return metrics
