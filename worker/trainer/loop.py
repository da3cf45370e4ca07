"""The training loop: one visible `for` over epochs and batches, measured honestly.

Rules that keep it as fast as a hand-written loop:
- the data is on the device and batched by index (data.py);
- no host synchronisation per step: losses accumulate in a device tensor and are read
  only when a step metric is due (at most every `step_metric_interval_s`) and at the end
  of each epoch;
- events leave through `emit`, which only buffers a line for the supervising process.
"""

import contextlib
import math
import time
from collections.abc import Callable
from functools import partial
from typing import Any, NoReturn

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from app.jobs.protocol import CheckpointKind, CheckpointSaved, Timings
from app.spec import JobSpec
from app.spec.optimization import maximized
from worker.trainer import levers
from worker.trainer.checkpoints import CheckpointStore, WarmStart
from worker.trainer.clock import Clock
from worker.trainer.data import Splits, eval_batches
from worker.trainer.devices import (
    PRECISIONS,
    channels_last,
    compiled,
    peak_memory_mb,
)
from worker.trainer.distributed import World
from worker.trainer.nets import build_net
from worker.trainer.optim import LrSchedule, build_optimizer, scaled_lr
from worker.trainer.stopping import Stopped, StopRequest, finite

Emit = Callable[[str, dict[str, Any]], None]
EVAL_BATCH = 4096


class Trainer:
    def __init__(
        self,
        spec: JobSpec,
        splits: Splits,
        device: torch.device,
        emit: Emit,
        *,
        step_metric_interval_s: float = 1.0,
        flops_per_sample: int | None = None,
        warm_start: WarmStart | None = None,
        resume: dict[str, Any] | None = None,
        checkpoints: CheckpointStore | None = None,
        reported_epoch: int = 0,
        world: World | None = None,
        stop: StopRequest | None = None,
    ) -> None:
        self.spec = spec
        self.splits = splits
        self.flops_per_sample = flops_per_sample
        # Classification learns labels by cross-entropy; regression learns targets by MSE.
        self.loss_fn = F.mse_loss if splits.regression else F.cross_entropy
        self.device = device
        # A plain job is a world of one; a DDP rank gets its place among the others.
        self.world = world or World(device)
        self.emit = emit
        self.step_metric_interval_s = step_metric_interval_s
        training = spec.training
        torch.manual_seed(training.seed)
        input_shape = tuple(splits.train.x.shape[1:])
        assert spec.model.layers is not None  # the API stores presets expanded
        self.net: nn.Module = build_net(spec.model.layers, input_shape).to(device)
        if warm_start is not None:
            warm_start.apply(self.net)
        self.checkpoints = checkpoints
        # Epochs up to here were reported by an earlier attempt: retrain them silently.
        self.reported_epoch = reported_epoch
        self.stop = stop or StopRequest()
        # Set by a resume from a checkpoint taken mid-epoch: how far into it that was.
        self.within_epoch: dict[str, Any] | None = None
        self.clock = Clock()
        self.channels_last = levers.use_channels_last(
            training.channels_last, device, spec.model.layers
        )
        if self.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
            self.splits = Splits(
                channels_last(splits.train), splits.val and channels_last(splits.val)
            )
        chosen = levers.choose_settings(
            spec,
            levers.Probe(self.net, spec.optimizer, self.loss_fn, self.splits.train, device),
            world_size=self.world.size,
            channels_last=self.channels_last,
            resume=resume,
        )
        self.settings, self.probed, self.clock.probe_s = chosen
        n_train = len(splits.train)
        # batch_size is the global batch: each rank takes its share of every step.
        self.batch_size: int = math.ceil(self.settings["batch_size"] / self.world.size)
        self.steps_per_epoch: int = math.ceil(self.world.shard_size(n_train) / self.batch_size)
        self.total_steps = self.steps_per_epoch * training.epochs
        self.settings["compile"] = levers.use_compile(training.compile, device, self.total_steps)
        compiling = self.settings["compile"]
        # DDP goes inside torch.compile, as torch's docs ask. Evaluation runs the bare net:
        # DDP's forward may talk to the other ranks, and ranks evaluate unequal parts.
        trained = self.world.wrap(self.net)
        self.forward: Callable[[Tensor], Tensor] = compiled(trained) if compiling else trained
        self.predict: Callable[[Tensor], Tensor] = self.forward
        if trained is not self.net:
            self.predict = compiled(self.net) if compiling else self.net
        # Compiling happens at the first call in each mode (training, then inference).
        self.compile_pending = {"train", "eval"} if self.settings["compile"] else set()
        optimizer_spec, schedule_spec = scaled_lr(spec, self.settings["batch_size"])
        # Frozen parameters take no optimizer state, so they stay exactly as loaded.
        trainable = [p for p in self.net.parameters() if p.requires_grad]
        self.optimizer = build_optimizer(optimizer_spec, trainable, device)
        self.schedule = LrSchedule(
            schedule_spec,
            self.optimizer,
            steps_per_epoch=self.steps_per_epoch,
            epochs=training.epochs,
        )
        self.autocast_dtype = PRECISIONS[self.settings["precision"]]
        # fp16 gradients underflow without loss scaling; bf16 has fp32's range and needs none.
        self.scaler = torch.amp.GradScaler(
            device.type, enabled=self.autocast_dtype == torch.float16 and device.type == "cuda"
        )
        self.generator = torch.Generator().manual_seed(training.seed)
        self.step = 0
        self.start_epoch = 1
        self.history: list[dict[str, float]] = []
        if resume is not None:
            self.restore(resume)

    def state(self, epoch: int) -> dict[str, Any]:
        """Everything besides the weights that a resume needs to continue exactly here."""
        return {
            "epoch": epoch,
            "step": self.step,
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "shuffle_rng": self.generator.get_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
            "history": self.history,
            "settings": self.settings,
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Continue after `state`'s epoch: the weights are already loaded (a strict warm
        start); this restores the optimizer, the schedule, the RNG and the counters."""
        self.step, self.start_epoch = state["step"], state["epoch"] + 1
        self.history = list(state["history"])
        self.schedule.restore(state["schedule"], steps=self.step, epochs=state["epoch"])
        self.schedule.keep_lr_across(lambda: self.optimizer.load_state_dict(state["optimizer"]))
        torch.set_rng_state(state["torch_rng"])
        # Mid-epoch, "shuffle_rng" is the generator as that epoch began: drawing the same
        # permutation again and skipping the batches already trained continues exactly.
        self.generator.set_state(state["shuffle_rng"])
        self.within_epoch = state.get("within_epoch")
        if self.device.type == "cuda" and state["cuda_rng"]:
            torch.cuda.set_rng_state_all(state["cuda_rng"])

    def save_checkpoint(
        self,
        kind: CheckpointKind,
        epoch: int,
        metrics: dict[str, float],
        state: dict[str, Any] | None = None,
    ) -> None:
        if self.checkpoints is None:
            return
        started = time.perf_counter()
        files = self.checkpoints.save(self.net.state_dict(), state or self.state(epoch))
        self.clock.checkpoint_s += time.perf_counter() - started
        saved = CheckpointSaved(
            **files.model_dump(), kind=kind, epoch=epoch, step=self.step, metrics=metrics
        )
        self.emit("checkpoint", saved.model_dump())

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def run(self) -> dict[str, Any]:
        """Train for the spec's epochs or until its target; the result and timings."""
        target = self.spec.training.target
        history = self.history
        policy = self.spec.checkpoint
        stopped = "completed"
        metrics: dict[str, float] = history[-1] if history else {}
        epoch = self.start_epoch - 1
        for epoch in range(self.start_epoch, self.spec.training.epochs + 1):
            if self.stop.requested:  # before the epoch's first step (or a resumed one's)
                within = self.within_epoch or {"batches": 0, "loss_sum": 0.0}
                self.stop_here(
                    epoch, within["batches"], within["loss_sum"], self.generator.get_state()
                )
            started, compile_s = time.perf_counter(), self.clock.compile_s
            train_loss = self.train_epoch(epoch)
            train_s = time.perf_counter() - started - (self.clock.compile_s - compile_s)
            self.clock.train_s += train_s
            metrics = finite({"train_loss": train_loss, **self.evaluate()}, epoch)
            epoch_s = time.perf_counter() - started
            self.clock.epoch_s.append(epoch_s)
            samples = len(self.splits.train)
            if epoch > self.reported_epoch:
                self.emit_epoch_metric(epoch, metrics, samples / train_s, epoch_s)
            history.append({"epoch": epoch, "step": self.step, **metrics})
            if target is not None and target.reached(metrics[target.metric]):
                self.clock.time_to_target_s = self.clock.since_first_step()
                message = f"target {target.metric} {target.value} reached at epoch {epoch}"
                self.emit("log", {"level": "info", "message": message})
                stopped = "target_reached"
                break
            self.schedule.after_epoch(metrics)
            if epoch % policy.every_epochs == 0:
                self.save_checkpoint("epoch", epoch, metrics)
        if history:
            self.save_checkpoint("final", epoch, metrics)
        return self.result(history, stopped)

    def train_epoch(self, epoch: int) -> float:
        self.net.train()
        epoch_rng = self.generator.get_state()  # before the shuffle, for a mid-epoch stop
        within, self.within_epoch = self.within_epoch or {"batches": 0, "loss_sum": 0.0}, None
        skip = int(within["batches"])
        # One running sum on the device; a step metric reads it and remembers what it read,
        # so a window's loss is a difference and the hot loop does a single add.
        loss_sum = torch.full((), float(within["loss_sum"]), device=self.device)
        read_sum, read_steps, read_samples = float(within["loss_sum"]), skip, 0
        samples = 0
        window_started = time.perf_counter()
        if self.clock.first_step_at is None:
            self.clock.first_step_at = time.time()
            self.clock.first_step_perf = window_started
        shard = self.world.batches(
            self.splits.train, self.batch_size, self.generator, self.spec.training.seed, epoch
        )
        for steps, (x, y) in enumerate(shard, start=1):
            if steps <= skip:  # trained before a mid-epoch stop
                continue
            if self.compile_pending:
                loss_sum += self.compiling("train", partial(self.train_step, x, y))
            else:
                loss_sum += self.train_step(x, y)
            samples += len(y) * self.world.size
            # A host-side clock check per step; the device is read only when a metric is due.
            now = time.perf_counter()
            due = now - window_started >= self.step_metric_interval_s
            if self.world.step_metric_due(steps, due) and epoch > self.reported_epoch:
                total = float(self.world.mean(loss_sum.clone()).item())
                self.emit_step_metric(
                    epoch,
                    (total - read_sum) / (steps - read_steps),
                    (samples - read_samples) / (now - window_started),
                )
                read_sum, read_steps, read_samples, window_started = total, steps, samples, now
            if self.stop.requested:
                self.stop_here(epoch, steps, float(loss_sum.item()), epoch_rng)
        # The epoch's one sync: the mean of every rank's mean batch loss.
        mean_loss = float(self.world.mean(loss_sum).item()) / self.steps_per_epoch
        self.clock.train_samples += len(self.splits.train)
        return mean_loss

    def stop_here(
        self, epoch: int, batches_done: int, loss_sum: float, epoch_rng: Tensor
    ) -> NoReturn:
        """Checkpoint `batches_done` batches into `epoch`, then stop (raises Stopped)."""
        state = {
            **self.state(epoch - 1),
            "shuffle_rng": epoch_rng,
            "within_epoch": {"batches": batches_done, "loss_sum": loss_sum},
        }
        last = self.history[-1] if self.history else {}
        metrics = {k: v for k, v in last.items() if k not in ("epoch", "step")}
        self.save_checkpoint("stop", epoch - 1, metrics, state)
        raise Stopped(
            f"stopped on request at step {self.step} ({batches_done} batches into epoch {epoch})"
        )

    def compiling(self, mode: str, call: Callable[[], Tensor]) -> Tensor:
        """The first call in a mode compiles the net: timed apart from training."""
        if mode not in self.compile_pending:
            return call()
        self.compile_pending.discard(mode)
        self.synchronize()
        started = time.perf_counter()
        out = call()
        self.synchronize()
        self.clock.compile_s += time.perf_counter() - started
        return out

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def train_step(self, x: Tensor, y: Tensor) -> Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast():
            loss = self.loss_fn(self.forward(x), y)
        if self.scaler.is_enabled():
            self.scaler.scale(loss).backward()  # type: ignore[no-untyped-call]
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:  # the common case, without the scaler's per-step bookkeeping
            loss.backward()  # type: ignore[no-untyped-call]
            self.optimizer.step()
        self.step += 1
        if self.schedule.per_step:
            self.schedule.after_step(self.step, self.total_steps)
        return loss.detach()

    def emit_epoch_metric(
        self, epoch: int, metrics: dict[str, float], samples_per_s: float, epoch_s: float
    ) -> None:
        self.emit(
            "metric",
            {
                "scope": "epoch",
                "epoch": epoch,
                "step": self.step,
                **metrics,
                "lr": self.schedule.lr,
                "samples_per_s": samples_per_s,
                "epoch_s": epoch_s,
            },
        )

    def emit_step_metric(self, epoch: int, loss: float, samples_per_s: float) -> None:
        train_loss = finite({"train_loss": loss}, epoch)["train_loss"]
        self.emit(
            "metric",
            {
                "scope": "step",
                "epoch": epoch,
                "step": self.step,
                "train_loss": train_loss,
                "lr": self.schedule.lr,
                "samples_per_s": samples_per_s,
            },
        )

    @torch.inference_mode()
    def evaluate(self) -> dict[str, float]:
        val = self.splits.val
        if val is None:
            return {}
        started, compile_s = time.perf_counter(), self.clock.compile_s
        self.net.eval()
        part = self.world.part(val)
        loss_sum = torch.zeros((), device=self.device)
        # Classification: correct predictions; regression: the sum of absolute errors.
        score = torch.zeros((), device=self.device)
        for x, y in eval_batches(part, EVAL_BATCH):
            with self.autocast():
                out = self.compiling("eval", partial(self.predict, x)).float()
            if self.splits.regression:
                # Per-sample MSE summed, so val_loss is the mean over samples like train_loss.
                loss_sum += F.mse_loss(out, y, reduction="sum") / y.shape[1]
                score += (out - y).abs().sum() / y.shape[1]
            else:
                loss_sum += F.cross_entropy(out, y, reduction="sum")
                score += (out.argmax(dim=1) == y).sum()
        name = "val_mae" if self.splits.regression else "val_accuracy"
        # Summed over the ranks' parts, so every rank holds the same metrics and decisions.
        loss, total = self.world.sum(torch.stack([loss_sum, score])).tolist()
        metrics = {"val_loss": loss / len(val), name: total / len(val)}
        self.clock.eval_s += time.perf_counter() - started - (self.clock.compile_s - compile_s)
        return metrics

    def result(self, history: list[dict[str, float]], stopped: str) -> dict[str, Any]:
        target = self.spec.training.target
        best_metric: str | None = target.metric if target else None
        if best_metric is None:
            validated = "val_loss" if self.splits.regression else "val_accuracy"
            best_metric = validated if self.splits.val is not None else "train_loss"
        maximize = maximized(best_metric)
        best = max(history, key=lambda m: m[best_metric] if maximize else -m[best_metric])
        return {
            "final": history[-1],
            "best": best,
            "epochs": len(history),
            "steps": self.step,
            "stopped": stopped,
            "settings": self.settings,
            "peak_memory_mb": peak_memory_mb(self.device),
            "world_size": self.world.size,
        }

    def timings(self, claimed_at: float) -> Timings:
        """The trainer's share of the job's timings; the supervisor adds queue and total."""
        return self.clock.timings(claimed_at, self.flops_per_sample)
