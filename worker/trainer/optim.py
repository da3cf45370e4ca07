"""Optimizers and learning-rate schedules from the spec, with torch's own implementations."""

from collections.abc import Iterable
from typing import Literal

import torch
from torch import nn
from torch.optim import lr_scheduler

from app.spec.schemas import (
    Adagrad,
    Adam,
    ConstantSchedule,
    CosineSchedule,
    OneCycleSchedule,
    Optimizer,
    PlateauSchedule,
    RmsProp,
    Schedule,
    Sgd,
    StepSchedule,
)


def build_optimizer(spec: Optimizer, params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
    match spec:
        case Sgd():
            return torch.optim.SGD(
                params,
                lr=spec.lr,
                momentum=spec.momentum,
                nesterov=spec.nesterov,
                weight_decay=spec.weight_decay,
            )
        case Adam(name="adam"):
            return torch.optim.Adam(
                params, lr=spec.lr, betas=spec.betas, eps=spec.eps, weight_decay=spec.weight_decay
            )
        case Adam():
            return torch.optim.AdamW(
                params, lr=spec.lr, betas=spec.betas, eps=spec.eps, weight_decay=spec.weight_decay
            )
        case RmsProp():
            return torch.optim.RMSprop(
                params,
                lr=spec.lr,
                alpha=spec.alpha,
                eps=spec.eps,
                momentum=spec.momentum,
                weight_decay=spec.weight_decay,
            )
        case Adagrad():
            return torch.optim.Adagrad(
                params, lr=spec.lr, eps=spec.eps, weight_decay=spec.weight_decay
            )
    raise AssertionError(f"unhandled optimizer {spec!r}")


MAX_PCT_START = 0.99


class LrSchedule:
    """One interface over torch's schedulers: some step per batch, some per epoch."""

    def __init__(
        self, spec: Schedule, optimizer: torch.optim.Optimizer, *, steps_per_epoch: int, epochs: int
    ) -> None:
        self.spec = spec
        self.optimizer = optimizer
        self._per_step: lr_scheduler.LRScheduler | None = None
        self._per_epoch: lr_scheduler.LRScheduler | None = None
        self._plateau: lr_scheduler.ReduceLROnPlateau | None = None
        total_steps = steps_per_epoch * epochs
        match spec:
            case ConstantSchedule():
                pass
            case StepSchedule():
                self._per_epoch = lr_scheduler.StepLR(optimizer, spec.step_epochs, gamma=spec.gamma)
            case CosineSchedule():
                self._per_step = lr_scheduler.CosineAnnealingLR(
                    optimizer, T_max=total_steps, eta_min=spec.min_lr
                )
            case OneCycleSchedule():
                max_lr = spec.max_lr or optimizer.param_groups[0]["lr"]
                # OneCycleLR divides by (pct_start * total_steps - 1): a warm-up of exactly
                # one step is a ZeroDivisionError, so short runs get a warm-up of 1.5 steps.
                pct_start = max(spec.pct_start, min(MAX_PCT_START, 1.5 / total_steps))
                self._per_step = lr_scheduler.OneCycleLR(
                    optimizer, max_lr=max_lr, total_steps=total_steps, pct_start=pct_start
                )
            case PlateauSchedule():
                mode: Literal["min", "max"] = "max" if spec.metric.endswith("accuracy") else "min"
                self._plateau = lr_scheduler.ReduceLROnPlateau(
                    optimizer,
                    mode=mode,
                    factor=spec.factor,
                    patience=spec.patience,
                    min_lr=spec.min_lr,
                    # torch skips reductions smaller than eps (1e-8 by default), which would
                    # silently ignore the schedule for small learning rates.
                    eps=0.0,
                )

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def after_step(self, step: int, total_steps: int) -> None:
        # OneCycleLR raises when stepped past its total; the last step needs no next lr.
        if self._per_step is not None and step < total_steps:
            self._per_step.step()

    def after_epoch(self, metrics: dict[str, float]) -> None:
        if self._per_epoch is not None:
            self._per_epoch.step()
        if self._plateau is not None:
            assert isinstance(self.spec, PlateauSchedule)
            self._plateau.step(metrics[self.spec.metric])
