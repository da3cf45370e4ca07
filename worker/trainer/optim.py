"""Optimizers and learning-rate schedules from the spec, with torch's own implementations."""

import warnings
from collections.abc import Callable, Iterable
from typing import Any, Literal

import torch
from torch import nn
from torch.optim import lr_scheduler

from app.spec import JobSpec
from app.spec.optimization import (
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


def build_optimizer(
    spec: Optimizer, params: Iterable[nn.Parameter], device: torch.device
) -> torch.optim.Optimizer:
    # One kernel per step for all parameters: fused on CUDA where torch has it, else the
    # multi-tensor (foreach) path, which torch only picks by itself on CUDA.
    fast: dict[str, bool] = {"foreach": True}
    if device.type == "cuda" and isinstance(spec, Sgd | Adam):
        fast = {"fused": True}
    match spec:
        case Sgd():
            return torch.optim.SGD(
                params,
                lr=spec.lr,
                momentum=spec.momentum,
                nesterov=spec.nesterov,
                weight_decay=spec.weight_decay,
                **fast,
            )
        case Adam(name="adam"):
            return torch.optim.Adam(
                params,
                lr=spec.lr,
                betas=spec.betas,
                eps=spec.eps,
                weight_decay=spec.weight_decay,
                **fast,
            )
        case Adam():
            return torch.optim.AdamW(
                params,
                lr=spec.lr,
                betas=spec.betas,
                eps=spec.eps,
                weight_decay=spec.weight_decay,
                **fast,
            )
        case RmsProp():
            return torch.optim.RMSprop(
                params,
                lr=spec.lr,
                alpha=spec.alpha,
                eps=spec.eps,
                momentum=spec.momentum,
                weight_decay=spec.weight_decay,
                **fast,
            )
        case Adagrad():
            return torch.optim.Adagrad(
                params, lr=spec.lr, eps=spec.eps, weight_decay=spec.weight_decay, **fast
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
        self.total_steps = steps_per_epoch * epochs
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

    def state_dict(self) -> dict[str, Any]:
        # Only plateau's state depends on the metrics seen; every other schedule is a
        # function of the step and epoch, recomputed by `restore`.
        return {"plateau": self._plateau.state_dict() if self._plateau is not None else None}

    def restore(self, state: dict[str, Any], *, steps: int, epochs: int) -> None:
        """Move the schedule to `steps` and `epochs`, as if it had run them."""
        with warnings.catch_warnings():
            # Stepping a schedule without optimizer steps warns; here it is the point.
            warnings.simplefilter("ignore", UserWarning)
            if self._per_step is not None:
                for step in range(1, steps + 1):
                    self.after_step(step, self.total_steps)
            if self._per_epoch is not None:
                for _ in range(epochs):
                    self._per_epoch.step()
        if self._plateau is not None and state.get("plateau"):
            self._plateau.load_state_dict(state["plateau"])

    def keep_lr_across(self, load: Callable[[], None]) -> None:
        """Run `load` (the optimizer's state) but keep the lr the schedule has set, except
        under plateau, whose lr is whatever the loaded run reduced it to."""
        if self._plateau is not None:
            load()
            return
        groups = [(g["lr"], g.get("initial_lr")) for g in self.optimizer.param_groups]
        load()
        for group, (lr, initial) in zip(self.optimizer.param_groups, groups, strict=True):
            group["lr"] = lr
            if initial is not None:
                group["initial_lr"] = initial

    @property
    def per_step(self) -> bool:
        """Whether the lr moves every step (cosine, one-cycle) rather than per epoch."""
        return self._per_step is not None

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


def scaled_lr(spec: JobSpec, batch_size: int) -> tuple[Optimizer, Schedule]:
    """The optimizer and schedule specs with their learning rates scaled linearly from
    `lr_reference_batch` to `batch_size` (Goyal et al., 2017), when the job asks."""
    reference = spec.training.lr_reference_batch
    optimizer, schedule = spec.optimizer, spec.schedule
    if reference is None:
        return optimizer, schedule
    factor = batch_size / reference
    optimizer = optimizer.model_copy(update={"lr": optimizer.lr * factor})
    if isinstance(schedule, OneCycleSchedule) and schedule.max_lr is not None:
        schedule = schedule.model_copy(update={"max_lr": schedule.max_lr * factor})
    return optimizer, schedule
