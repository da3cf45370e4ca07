"""Where a trainer's time went, and the timings it reports."""

import time
from dataclasses import dataclass, field

from app.jobs.protocol import Timings


@dataclass
class Clock:
    """Where the time went, from the trainer's side."""

    first_step_at: float | None = None  # wall clock, to compare with the claim time
    first_step_perf: float = 0.0
    train_s: float = 0.0
    eval_s: float = 0.0
    epoch_s: list[float] = field(default_factory=list)
    time_to_target_s: float | None = None
    train_samples: int = 0
    checkpoint_s: float = 0.0
    compile_s: float = 0.0
    probe_s: float = 0.0

    def since_first_step(self) -> float:
        return time.perf_counter() - self.first_step_perf

    def timings(self, claimed_at: float, flops_per_sample: int | None) -> Timings:
        """The trainer's share of the job's timings; the supervisor adds queue and total."""
        clock = self
        return Timings(
            startup_s=(clock.first_step_at or time.time()) - claimed_at,
            train_s=clock.train_s,
            eval_s=clock.eval_s,
            checkpoint_s=clock.checkpoint_s,
            compile_s=clock.compile_s,
            probe_s=clock.probe_s,
            samples_per_s=clock.train_samples / clock.train_s if clock.train_s else None,
            epoch_s=clock.epoch_s,
            time_to_target_s=clock.time_to_target_s,
            # Training costs about 3x the forward FLOPs (forward, and backward for both the
            # activations' and the weights' gradients).
            flops_per_s=(
                3 * flops_per_sample * clock.train_samples / clock.train_s
                if flops_per_sample and clock.train_s
                else None
            ),
        )
