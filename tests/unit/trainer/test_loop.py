"""The training loop on tiny synthetic jobs: optimizers, schedules, targets, events, failure."""

import json
import math
import time
from dataclasses import dataclass
from typing import Any

import pytest
import torch

from app.spec import JobSpec, SyntheticData
from worker.trainer import data
from worker.trainer.devices import pick_device, pick_precision
from worker.trainer.loop import Trainer
from worker.trainer.stopping import Diverged

CPU = torch.device("cpu")
DATASET = {"name": "synthetic", "samples": 512, "classes": 3, "input_shape": [8], "seed": 0}
MLP = [
    {"type": "linear", "out_features": 16, "activation": "relu"},
    {"type": "linear", "out_features": 3},
]
# 512 samples with the default val_fraction 0.2: 102 validate, 410 train.
TRAIN_SAMPLES = 410
# Longer than any of these runs, so no step metric is due unless a test asks for them.
NO_STEP_METRICS_S = 3600.0
EVERY_STEP_S = 0.0
EPOCH_KEYS = {
    "scope",
    "epoch",
    "step",
    "train_loss",
    "val_loss",
    "val_accuracy",
    "lr",
    "samples_per_s",
    "epoch_s",
}
STEP_KEYS = {"scope", "epoch", "step", "train_loss", "lr", "samples_per_s"}

Event = tuple[str, dict[str, Any]]


def job(
    *,
    optimizer: dict[str, Any] | None = None,
    schedule: dict[str, Any] | None = None,
    **training: Any,
) -> JobSpec:
    return JobSpec.model_validate(
        {
            "dataset": DATASET,
            "model": {"layers": MLP},
            "optimizer": optimizer or {"name": "sgd", "lr": 0.1},
            "schedule": schedule or {"name": "constant"},
            "training": {"epochs": 4, "batch_size": 64, "seed": 0, **training},
        }
    )


def trainer_for(
    spec: JobSpec, *, step_metric_interval_s: float = NO_STEP_METRICS_S
) -> tuple[Trainer, list[Event]]:
    """A CPU trainer for `spec`, prepared as the trainer process does, and its event list."""
    assert isinstance(spec.dataset, SyntheticData)
    x, y = data.synthetic_arrays(spec.dataset)
    training = spec.training
    splits = data.prepare(
        x,
        y,
        val_fraction=training.val_fraction,
        seed=training.seed,
        normalize=training.normalize,
        device=CPU,
    )
    events: list[Event] = []
    trainer = Trainer(
        spec,
        splits,
        CPU,
        lambda kind, payload: events.append((kind, payload)),
        step_metric_interval_s=step_metric_interval_s,
    )
    return trainer, events


@dataclass(frozen=True)
class Run:
    trainer: Trainer
    events: list[Event]
    result: dict[str, Any]

    def metrics(self, scope: str) -> list[dict[str, Any]]:
        return [p for kind, p in self.events if kind == "metric" and p["scope"] == scope]

    def epoch_lrs(self) -> list[float]:
        return [m["lr"] for m in self.metrics("epoch")]

    def epoch_losses(self) -> list[float]:
        return [m["train_loss"] for m in self.metrics("epoch")]


def train(spec: JobSpec, *, step_metric_interval_s: float = NO_STEP_METRICS_S) -> Run:
    trainer, events = trainer_for(spec, step_metric_interval_s=step_metric_interval_s)
    return Run(trainer, events, trainer.run())


OPTIMIZERS: list[tuple[dict[str, Any], type[torch.optim.Optimizer]]] = [
    ({"name": "sgd", "lr": 0.1}, torch.optim.SGD),
    ({"name": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True}, torch.optim.SGD),
    ({"name": "adam", "lr": 0.01}, torch.optim.Adam),
    ({"name": "adamw", "lr": 0.01, "weight_decay": 0.01}, torch.optim.AdamW),
    ({"name": "rmsprop", "lr": 0.003}, torch.optim.RMSprop),
    ({"name": "adagrad", "lr": 0.1}, torch.optim.Adagrad),
]


@pytest.mark.parametrize(
    ("optimizer", "torch_type"),
    OPTIMIZERS,
    ids=["sgd", "sgd-nesterov", "adam", "adamw", "rmsprop", "adagrad"],
)
def test_each_optimizer_lowers_training_loss_from_first_to_last_epoch(
    optimizer: dict[str, Any], torch_type: type[torch.optim.Optimizer]
) -> None:
    run = train(job(optimizer=optimizer))

    assert type(run.trainer.optimizer) is torch_type
    group = run.trainer.optimizer.param_groups[0]
    for option, value in optimizer.items():
        if option != "name":
            assert group[option] == value
    losses = run.epoch_losses()
    assert len(losses) == 4
    assert losses[-1] < 0.95 * losses[0]


def test_constant_schedule_keeps_lr() -> None:
    run = train(job(optimizer={"name": "sgd", "lr": 0.1}), step_metric_interval_s=EVERY_STEP_S)

    assert run.epoch_lrs() == [0.1] * 4
    assert {m["lr"] for m in run.metrics("step")} == {0.1}


def test_step_schedule_halves_lr_each_epoch() -> None:
    spec = job(
        optimizer={"name": "sgd", "lr": 0.1},
        schedule={"name": "step", "step_epochs": 1, "gamma": 0.5},
    )

    run = train(spec)

    assert run.epoch_lrs() == pytest.approx([0.1, 0.05, 0.025, 0.0125])


def test_step_schedule_with_two_step_epochs_decays_every_other_epoch() -> None:
    spec = job(
        optimizer={"name": "sgd", "lr": 0.1},
        schedule={"name": "step", "step_epochs": 2, "gamma": 0.1},
        epochs=5,
    )

    run = train(spec)

    assert run.epoch_lrs() == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001])


def test_cosine_schedule_decays_per_step_and_ends_near_min_lr() -> None:
    lr, min_lr, epochs = 0.1, 0.01, 5
    spec = job(
        optimizer={"name": "sgd", "lr": lr},
        schedule={"name": "cosine", "min_lr": min_lr},
        epochs=epochs,
    )

    run = train(spec)

    total = run.result["steps"]
    assert total == epochs * math.ceil(TRAIN_SAMPLES / 64)
    # The lr shown after step s is the one for the next step; the last step needs none.
    expected = [
        min_lr + (lr - min_lr) * (1 + math.cos(math.pi * min(m["step"], total - 1) / total)) / 2
        for m in run.metrics("epoch")
    ]
    assert run.epoch_lrs() == pytest.approx(expected, rel=1e-5)
    assert run.epoch_lrs()[-1] == pytest.approx(min_lr, abs=0.01 * (lr - min_lr))


def test_onecycle_schedule_runs_exact_steps_and_lr_rises_then_falls() -> None:
    max_lr = 0.2
    spec = job(
        optimizer={"name": "sgd", "lr": 0.05},
        schedule={"name": "onecycle", "max_lr": max_lr, "pct_start": 0.3},
    )

    run = train(spec, step_metric_interval_s=EVERY_STEP_S)

    total = 4 * math.ceil(TRAIN_SAMPLES / 64)
    assert run.result["steps"] == total
    lrs = [m["lr"] for m in run.metrics("step")]
    assert len(lrs) == total
    peak = lrs.index(max(lrs))
    assert 0 < peak < total - 1
    assert lrs[: peak + 1] == sorted(lrs[: peak + 1])
    assert lrs[peak:] == sorted(lrs[peak:], reverse=True)
    assert 0.99 * max_lr < lrs[peak] <= max_lr
    assert lrs[-1] < lrs[0]


def test_onecycle_schedule_trains_when_warmup_is_exactly_one_step() -> None:
    spec = job(schedule={"name": "onecycle", "pct_start": 0.1}, epochs=10, batch_size="full")

    run = train(spec)

    assert run.result["steps"] == 10


def test_plateau_schedule_reduces_lr_when_metric_stalls() -> None:
    # An lr this small moves val_loss far less than the plateau's relative threshold.
    spec = job(
        optimizer={"name": "sgd", "lr": 1e-6},
        schedule={"name": "plateau", "metric": "val_loss", "factor": 0.5, "patience": 0},
        epochs=3,
    )

    run = train(spec)

    # Epoch 1 sets the best; epoch 2 stalls, so epoch 3 runs at half the lr.
    assert run.epoch_lrs() == pytest.approx([1e-6, 1e-6, 5e-7])


def test_plateau_schedule_keeps_lr_while_metric_improves() -> None:
    spec = job(
        optimizer={"name": "sgd", "lr": 0.1},
        schedule={"name": "plateau", "metric": "train_loss", "factor": 0.5, "patience": 0},
    )

    run = train(spec)

    losses = run.epoch_losses()
    assert losses == sorted(losses, reverse=True)
    assert run.epoch_lrs() == [0.1] * 4


def test_plateau_schedule_reduces_tiny_lr_when_metric_stalls() -> None:
    spec = job(
        optimizer={"name": "sgd", "lr": 1e-9},
        schedule={"name": "plateau", "metric": "val_loss", "factor": 0.5, "patience": 0},
        epochs=3,
    )

    run = train(spec)

    assert run.epoch_lrs() == pytest.approx([1e-9, 1e-9, 5e-10])


def test_full_batch_makes_one_step_per_epoch() -> None:
    run = train(job(batch_size="full", epochs=5))

    assert run.result["steps"] == 5
    assert [m["step"] for m in run.metrics("epoch")] == [1, 2, 3, 4, 5]


def test_batch_size_above_training_split_makes_one_step_per_epoch() -> None:
    run = train(job(batch_size=10_000, epochs=3))

    assert run.result["steps"] == 3


def test_partial_last_batch_counts_as_a_step() -> None:
    run = train(job(batch_size=64, epochs=2))

    assert run.result["steps"] == 2 * math.ceil(TRAIN_SAMPLES / 64) == 14


def test_reachable_target_stops_early_and_records_time_to_target() -> None:
    spec = job(
        optimizer={"name": "adam", "lr": 0.01},
        epochs=20,
        target={"metric": "val_accuracy", "value": 0.6},
    )
    claimed_at = time.time()

    run = train(spec)

    assert run.result["stopped"] == "target_reached"
    assert run.result["epochs"] < 20
    epochs = run.metrics("epoch")
    assert len(epochs) == run.result["epochs"]
    assert epochs[-1]["val_accuracy"] >= 0.6
    assert all(m["val_accuracy"] < 0.6 for m in epochs[:-1])
    assert run.result["final"]["epoch"] == run.result["epochs"]
    logs = [p for kind, p in run.events if kind == "log"]
    assert [log["message"] for log in logs] == [
        f"target val_accuracy 0.6 reached at epoch {run.result['epochs']}"
    ]
    time_to_target = run.trainer.timings(claimed_at).time_to_target_s
    assert time_to_target is not None
    assert time_to_target >= 0


def test_reachable_loss_target_stops_when_loss_falls_to_value() -> None:
    spec = job(
        optimizer={"name": "adam", "lr": 0.01},
        epochs=20,
        target={"metric": "train_loss", "value": 0.85},
    )

    run = train(spec)

    assert run.result["stopped"] == "target_reached"
    losses = run.epoch_losses()
    assert losses[-1] <= 0.85
    assert all(loss > 0.85 for loss in losses[:-1])


def test_unreachable_target_completes_all_epochs_without_time_to_target() -> None:
    spec = job(epochs=3, target={"metric": "val_accuracy", "value": 0.99})

    run = train(spec)

    assert run.result["stopped"] == "completed"
    assert run.result["epochs"] == 3
    assert run.trainer.timings(time.time()).time_to_target_s is None


def test_epoch_metric_events_carry_epoch_fields() -> None:
    run = train(job(epochs=3))

    epochs = run.metrics("epoch")
    assert [m["epoch"] for m in epochs] == [1, 2, 3]
    assert [m["step"] for m in epochs] == [7, 14, 21]
    for metric in epochs:
        assert set(metric) == EPOCH_KEYS
        assert metric["scope"] == "epoch"
        assert 0.0 <= metric["val_accuracy"] <= 1.0
        assert metric["samples_per_s"] > 0
        assert metric["epoch_s"] >= 0
    assert [kind for kind, _ in run.events] == ["metric"] * 3


def test_step_metric_events_carry_scope_step_and_no_validation_fields() -> None:
    run = train(job(epochs=2), step_metric_interval_s=EVERY_STEP_S)

    steps = run.metrics("step")
    assert [m["step"] for m in steps] == list(range(1, 15))
    assert [m["epoch"] for m in steps] == [1] * 7 + [2] * 7
    for metric in steps:
        assert set(metric) == STEP_KEYS
        assert not any(key.startswith("val_") for key in metric)
        assert math.isfinite(metric["train_loss"])
        assert metric["samples_per_s"] > 0
    # Each epoch's mean loss is the mean of its steps' losses.
    epoch_losses = run.epoch_losses()
    for epoch in (1, 2):
        losses = [m["train_loss"] for m in steps if m["epoch"] == epoch]
        assert epoch_losses[epoch - 1] == pytest.approx(sum(losses) / len(losses), rel=1e-5)


def test_step_metrics_are_not_emitted_before_their_interval_elapses() -> None:
    run = train(job(epochs=2))

    assert run.metrics("step") == []


def test_run_without_validation_split_reports_training_metrics_only() -> None:
    run = train(job(val_fraction=0.0, epochs=3))

    for metric in run.metrics("epoch"):
        assert set(metric) == EPOCH_KEYS - {"val_loss", "val_accuracy"}
    best_loss = min(run.epoch_losses())
    assert run.result["best"]["train_loss"] == best_loss
    assert run.result["steps"] == 3 * math.ceil(512 / 64)


def test_result_reports_final_and_best_epochs_by_validation_accuracy() -> None:
    run = train(job(epochs=4))

    epochs = run.metrics("epoch")
    assert run.result["epochs"] == 4
    assert run.result["stopped"] == "completed"
    assert run.result["final"]["epoch"] == 4
    assert run.result["final"]["train_loss"] == epochs[-1]["train_loss"]
    assert run.result["best"]["val_accuracy"] == max(m["val_accuracy"] for m in epochs)


def test_timings_account_for_every_epoch() -> None:
    claimed_at = time.time()
    run = train(job(epochs=3))

    timings = run.trainer.timings(claimed_at)

    assert set(timings.model_dump()) == {
        "startup_s",
        "train_s",
        "eval_s",
        "checkpoint_s",
        "compile_s",
        "probe_s",
        "samples_per_s",
        "epoch_s",
        "time_to_target_s",
        "flops_per_s",
    }
    assert run.result["peak_memory_mb"] > 0
    assert timings.compile_s == 0  # nothing compiled, nothing probed
    assert timings.probe_s == 0
    assert len(timings.epoch_s) == 3
    assert timings.startup_s >= 0
    assert timings.train_s >= 0
    assert timings.eval_s >= 0
    assert timings.samples_per_s is not None
    assert timings.time_to_target_s is None


def test_huge_lr_raises_diverged() -> None:
    trainer, _ = trainer_for(job(optimizer={"name": "sgd", "lr": 100.0}, epochs=10))

    with pytest.raises(Diverged, match=r"(train|val)_loss became (nan|inf)"):
        trainer.run()


def test_diverging_run_emits_only_json_serialisable_metrics() -> None:
    trainer, events = trainer_for(
        job(optimizer={"name": "sgd", "lr": 100.0}, epochs=10),
        step_metric_interval_s=EVERY_STEP_S,
    )

    with pytest.raises(Diverged):
        trainer.run()

    unserialisable = []
    for kind, payload in events:
        try:
            json.dumps(payload, allow_nan=False)
        except ValueError:
            unserialisable.append((kind, payload))
    assert unserialisable == []


def test_same_seed_gives_identical_results() -> None:
    first = train(job(optimizer={"name": "adam", "lr": 0.01}, epochs=3))
    second = train(job(optimizer={"name": "adam", "lr": 0.01}, epochs=3))

    assert first.result == second.result
    assert first.epoch_losses() == second.epoch_losses()


def test_different_seed_gives_different_results() -> None:
    first = train(job(seed=0, epochs=3))
    second = train(job(seed=1, epochs=3))

    assert first.result["final"]["train_loss"] != second.result["final"]["train_loss"]
    assert first.epoch_losses() != second.epoch_losses()


@pytest.mark.parametrize(
    ("requested", "dtype"),
    [("auto", None), ("fp32", None), ("bf16", torch.bfloat16), ("fp16", torch.float16)],
)
def test_pick_precision_on_cpu_gives_autocast_dtype(
    requested: str, dtype: torch.dtype | None
) -> None:
    assert pick_precision(requested, CPU) is dtype


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_pick_device_cuda_raises_without_gpu() -> None:
    with pytest.raises(RuntimeError, match="no GPU"):
        pick_device("cuda")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_pick_device_auto_falls_back_to_cpu_without_gpu() -> None:
    assert pick_device("auto") == CPU


def test_pick_device_cpu_gives_cpu() -> None:
    assert pick_device("cpu") == CPU
