"""The speed levers a job leaves on `auto`, decided on the worker by what it has and, where
the answer depends on the net, by a short probe.

A probe trains a throwaway copy of the net for a few steps on real batches, so the job's
own weights, optimizer state and random streams are untouched: a job with `auto` levers
trains exactly as it would with the values the probe chose written into its spec.
"""

import copy
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from app.spec import JobSpec
from app.spec.layers import Layer
from app.spec.optimization import Optimizer
from worker.trainer.data import Split
from worker.trainer.devices import pick_precision, precision_name
from worker.trainer.optim import build_optimizer

# torch.compile costs tens of seconds and saves at most a few milliseconds a step, so
# `auto` compiles only jobs long enough to pay that back, and only on CUDA (inductor's
# CPU code rarely beats eager for the small nets a CPU worker trains).
COMPILE_AUTO_MIN_STEPS = 10_000
# `auto` prefers the smaller of two settings unless the other is clearly faster: smaller
# batches usually need fewer samples to reach an accuracy, and fp32 is exact.
CLEARLY_FASTER = 1.10
BATCH_CANDIDATES = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
PROBE_WARMUP_STEPS = 2
PROBE_MIN_STEPS = 3
PROBE_MAX_STEPS = 20
PROBE_MIN_S = 0.05

LossFn = Callable[[Tensor, Tensor], Tensor]


@cache
def cpu_has_native_bf16() -> bool:
    """AMX tiles make bf16 matrix products several times faster than fp32; without them
    (AVX-512 BF16 only converts and dots) CPU autocast to bf16 is a slowdown."""
    try:
        return "amx_bf16" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def has_conv2d(layers: list[Layer]) -> bool:
    return any(layer.type == "conv2d" for layer in layers)


def use_channels_last(requested: bool | str, device: torch.device, layers: list[Layer]) -> bool:
    """Channels-last lets cuDNN run convolutions on tensor cores without transposes; on
    CPU and for nets without convolutions it only adds copies."""
    if requested == "auto":
        return device.type == "cuda" and has_conv2d(layers)
    return bool(requested)


def use_compile(requested: bool | str, device: torch.device, total_steps: int) -> bool:
    if requested == "auto":
        return device.type == "cuda" and total_steps >= COMPILE_AUTO_MIN_STEPS
    return bool(requested)


@dataclass(frozen=True)
class Probe:
    """Measures training throughput of copies of one net on one training split."""

    net: nn.Module
    optimizer: Optimizer
    loss_fn: LossFn
    train: Split
    device: torch.device

    def samples_per_s(self, batch_size: int, autocast_dtype: torch.dtype | None) -> float:
        """Samples per second over a few timed steps after a warm-up; 0 when the batch
        does not fit in the device's memory. The global random stream (dropout draws
        from it) is where it was before."""
        rng = torch.get_rng_state()
        net = copy.deepcopy(self.net)
        trainable = [p for p in net.parameters() if p.requires_grad]
        optimizer = build_optimizer(self.optimizer, trainable, self.device)
        batches = self._batches(batch_size)
        try:
            for _ in range(PROBE_WARMUP_STEPS):
                self._step(net, optimizer, next(batches), autocast_dtype)
            self._synchronize()
            started = time.perf_counter()
            steps = samples = 0
            while steps < PROBE_MAX_STEPS and (
                steps < PROBE_MIN_STEPS or time.perf_counter() - started < PROBE_MIN_S
            ):
                x, y = next(batches)
                self._step(net, optimizer, (x, y), autocast_dtype)
                steps, samples = steps + 1, samples + len(y)
                self._synchronize()
            return samples / (time.perf_counter() - started)
        except torch.OutOfMemoryError:
            return 0.0
        finally:
            torch.set_rng_state(rng)
            del net, optimizer
            if self.device.type == "cuda":
                torch.cuda.empty_cache()

    def _batches(self, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        # Its own generator: the job's shuffling stream must not move.
        generator = torch.Generator().manual_seed(0)
        n = len(self.train)
        while True:
            index = torch.randint(n, (batch_size,), generator=generator).to(self.device)
            yield self.train.x[index], self.train.y[index]

    def _step(
        self,
        net: nn.Module,
        optimizer: torch.optim.Optimizer,
        batch: tuple[Tensor, Tensor],
        autocast_dtype: torch.dtype | None,
    ) -> None:
        x, y = batch
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(
            self.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None
        ):
            loss = self.loss_fn(net(x), y)
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()

    def _synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def probe_precision(probe: Probe, batch_size: int) -> tuple[torch.dtype | None, dict[str, float]]:
    """bf16 autocast on a CPU with native bf16 when it is clearly faster for this net:
    it is for convolutions and wide layers, and slower for tiny overhead-bound nets."""
    fp32 = probe.samples_per_s(batch_size, None)
    bf16 = probe.samples_per_s(batch_size, torch.bfloat16)
    chosen = torch.bfloat16 if bf16 >= CLEARLY_FASTER * fp32 else None
    return chosen, {"fp32": fp32, "bf16": bf16}


def probe_batch_size(
    probe: Probe, autocast_dtype: torch.dtype | None
) -> tuple[int, dict[int, float]]:
    """The smallest candidate within 1/CLEARLY_FASTER of the best throughput. Larger
    batches are tried until one no longer fits in memory or stops paying."""
    n_train = len(probe.train)
    candidates = [b for b in BATCH_CANDIDATES if b < n_train] + [n_train]
    measured: dict[int, float] = {}
    for batch_size in sorted(set(candidates)):
        throughput = probe.samples_per_s(batch_size, autocast_dtype)
        if throughput == 0.0:
            break  # out of memory: every larger batch is too
        measured[batch_size] = throughput
        best_so_far = max(measured.values())
        if throughput * CLEARLY_FASTER < best_so_far:
            break  # past the knee: larger batches only get slower
    if not measured:
        raise RuntimeError(f"no batch of {BATCH_CANDIDATES[0]} or more fits in memory")
    best = max(measured.values())
    chosen = min(b for b, throughput in measured.items() if throughput * CLEARLY_FASTER >= best)
    return chosen, measured


# The batch a precision probe measures at when the batch size is itself `auto`.
PRECISION_PROBE_BATCH = 256


def choose_settings(
    spec: JobSpec,
    probe: Probe,
    *,
    world_size: int,
    channels_last: bool,
    resume: dict[str, Any] | None,
) -> tuple[dict[str, Any], dict[str, Any], float]:
    """Batch size and precision as the spec gives them, `auto` resolved by a probe: the
    settings, what the probe measured, and how long it took. A resumed attempt keeps its
    first attempt's choices, so it retrains the same steps."""
    training = spec.training
    threads = torch.get_num_threads()
    if resume is not None and "settings" in resume:
        return {**resume["settings"], "channels_last": channels_last, "threads": threads}, {}, 0.0
    n_train = len(probe.train)
    match training.batch_size:
        case "full":
            nominal = n_train
        case "auto":
            nominal = min(PRECISION_PROBE_BATCH, n_train)
        case int(size):
            nominal = min(size, n_train)
    dtype = pick_precision(training.precision, probe.device)
    probed: dict[str, Any] = {}
    started = time.perf_counter()
    cpu_bf16 = probe.device.type == "cpu" and cpu_has_native_bf16()
    # DDP ranks do not probe: each would measure its own answer, and they must agree.
    if training.precision == "auto" and cpu_bf16 and world_size == 1:
        dtype, probed["precision"] = probe_precision(probe, nominal)
    batch_size = nominal
    if training.batch_size == "auto":
        batch_size, probed["batch_size"] = probe_batch_size(probe, dtype)
    settings = {
        "batch_size": batch_size,
        "precision": precision_name(dtype),
        "channels_last": channels_last,
        "threads": threads,
    }
    return settings, probed, (time.perf_counter() - started if probed else 0.0)
