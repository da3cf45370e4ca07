"""The speed levers: `auto` resolved by what the worker has and by short probes, and a job
with `auto` levers training exactly as the same job with the chosen values written in."""

from typing import Any

import pytest
import torch

from app.spec import JobSpec, SyntheticData
from tests.unit.trainer.test_loop import CPU, TRAIN_SAMPLES, job, train, trainer_for
from worker.trainer import data, levers
from worker.trainer.loop import Trainer
from worker.trainer.optim import build_optimizer

CONV_DATASET = {"name": "synthetic", "samples": 256, "classes": 3, "input_shape": [1, 8, 8]}
CONV_LAYERS = [
    {"type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1, "activation": "relu"},
    {"type": "flatten"},
    {"type": "linear", "out_features": 3},
]


def conv_job(**training: Any) -> JobSpec:
    return JobSpec.model_validate(
        {
            "dataset": CONV_DATASET,
            "model": {"layers": CONV_LAYERS},
            "optimizer": {"name": "sgd", "lr": 0.05},
            "training": {"epochs": 2, "batch_size": 32, **training},
        }
    )


def test_auto_batch_size_is_a_measured_candidate_and_logged() -> None:
    run = train(job(batch_size="auto", epochs=2))

    chosen = run.result["settings"]["batch_size"]
    assert chosen in (*levers.BATCH_CANDIDATES, TRAIN_SAMPLES)
    assert chosen in run.trainer.probed["batch_size"]
    assert run.trainer.clock.probe_s > 0
    assert run.trainer.steps_per_epoch == -(-TRAIN_SAMPLES // chosen)


def test_auto_batch_size_trains_exactly_like_its_choice_given_explicitly() -> None:
    auto = train(job(batch_size="auto", epochs=3, optimizer={"name": "adam", "lr": 0.01}))
    chosen = auto.result["settings"]["batch_size"]

    explicit = train(job(batch_size=chosen, epochs=3, optimizer={"name": "adam", "lr": 0.01}))

    assert auto.epoch_losses() == explicit.epoch_losses()
    assert auto.result["final"] == explicit.result["final"]


def test_probe_leaves_the_global_random_stream_where_it_was() -> None:
    trainer, _ = trainer_for(job())
    probe = levers.Probe(
        trainer.net, trainer.spec.optimizer, trainer.loss_fn, trainer.splits.train, CPU
    )
    before = torch.get_rng_state()

    probe.samples_per_s(32, None)

    assert torch.equal(torch.get_rng_state(), before)


def test_probe_leaves_the_nets_weights_alone() -> None:
    trainer, _ = trainer_for(job())
    weights = {k: v.clone() for k, v in trainer.net.state_dict().items()}
    probe = levers.Probe(
        trainer.net, trainer.spec.optimizer, trainer.loss_fn, trainer.splits.train, CPU
    )

    assert probe.samples_per_s(64, None) > 0

    after = trainer.net.state_dict()
    assert all(torch.equal(weights[name], after[name]) for name in weights)


def test_batch_probe_picks_the_smallest_size_within_ten_percent_of_the_best() -> None:
    class Measured(levers.Probe):
        def samples_per_s(self, batch_size: int, autocast_dtype: torch.dtype | None) -> float:
            return {16: 100.0, 32: 200.0, 64: 330.0, 128: 360.0}.get(batch_size, 100.0)

    trainer, _ = trainer_for(job())
    probe = Measured(
        trainer.net, trainer.spec.optimizer, trainer.loss_fn, trainer.splits.train, CPU
    )

    chosen, measured = levers.probe_batch_size(probe, None)

    assert chosen == 64  # 330 is within 10% of 360; 200 is not
    # 256 was measured, fell off the knee, and the search stopped there.
    assert sorted(measured) == [16, 32, 64, 128, 256]


def test_batch_probe_stops_at_the_first_size_out_of_memory() -> None:
    class Bounded(levers.Probe):
        def samples_per_s(self, batch_size: int, autocast_dtype: torch.dtype | None) -> float:
            return 0.0 if batch_size > 64 else float(batch_size)

    trainer, _ = trainer_for(job())
    probe = Bounded(trainer.net, trainer.spec.optimizer, trainer.loss_fn, trainer.splits.train, CPU)

    chosen, measured = levers.probe_batch_size(probe, None)

    assert (chosen, sorted(measured)) == (64, [16, 32, 64])


def test_lr_scales_linearly_from_the_reference_batch() -> None:
    run = train(job(batch_size=128, lr_reference_batch=32, optimizer={"name": "sgd", "lr": 0.01}))

    assert run.trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.04)
    assert run.epoch_lrs()[0] == pytest.approx(0.04)


def test_onecycle_peak_scales_with_the_batch_too() -> None:
    trainer, _ = trainer_for(
        job(
            batch_size=64,
            lr_reference_batch=32,
            optimizer={"name": "sgd", "lr": 0.01},
            schedule={"name": "onecycle", "max_lr": 0.1},
        )
    )

    assert trainer.optimizer.param_groups[0]["max_lr"] == pytest.approx(0.2)


def test_precision_auto_on_a_cpu_without_native_bf16_is_fp32_and_probes_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(levers, "cpu_has_native_bf16", lambda: False)

    run = train(job(precision="auto", epochs=1))

    assert run.result["settings"]["precision"] == "fp32"
    assert run.trainer.probed == {}


def test_precision_auto_with_native_bf16_measures_both_and_picks_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(levers, "cpu_has_native_bf16", lambda: True)

    run = train(job(precision="auto", epochs=1))

    measured = run.trainer.probed["precision"]
    faster = measured["bf16"] >= levers.CLEARLY_FASTER * measured["fp32"]
    assert run.result["settings"]["precision"] == ("bf16" if faster else "fp32")


def test_channels_last_on_request_trains_a_conv_net_in_that_format() -> None:
    run = train(conv_job(channels_last=True))

    conv = run.trainer.net[0]
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert run.trainer.splits.train.x.is_contiguous(memory_format=torch.channels_last)
    assert run.result["settings"]["channels_last"] is True
    assert run.result["final"]["train_loss"] < run.epoch_losses()[0] * 1.5


def test_channels_last_auto_stays_off_on_cpu() -> None:
    run = train(conv_job())

    assert run.result["settings"]["channels_last"] is False


def test_compile_auto_stays_off_on_cpu() -> None:
    run = train(job(compile="auto", epochs=1))

    assert run.result["settings"]["compile"] is False
    assert run.trainer.clock.compile_s == 0


@pytest.mark.parametrize(
    ("device", "steps", "expected"),
    [("cpu", 10**6, False), ("cuda", 10, False), ("cuda", levers.COMPILE_AUTO_MIN_STEPS, True)],
)
def test_compile_auto_needs_cuda_and_enough_steps(device: str, steps: int, expected: bool) -> None:
    assert levers.use_compile("auto", torch.device(device), steps) is expected


def test_compile_on_request_times_the_compile_apart_from_training() -> None:
    run = train(job(compile=True, epochs=2))

    timings = run.trainer.timings(0.0)
    assert run.result["settings"]["compile"] is True
    assert timings.compile_s > 0
    # Both modes compiled once: training and inference.
    assert run.trainer.compile_pending == set()


def test_a_resumed_attempt_keeps_its_first_attempts_settings() -> None:
    first, _ = trainer_for(job(batch_size="auto", epochs=2))
    state = first.state(epoch=1)
    state["settings"] = {**state["settings"], "batch_size": 16}

    resumed = trainer_resuming(job(batch_size="auto", epochs=2), state)

    assert resumed.batch_size == 16
    assert resumed.probed == {}


def trainer_resuming(spec: JobSpec, state: dict[str, Any]) -> Trainer:
    assert isinstance(spec.dataset, SyntheticData)
    x, y = data.synthetic_arrays(spec.dataset)
    splits = data.prepare(x, y, val_fraction=0.2, seed=0, normalize="auto", device=CPU)
    return Trainer(spec, splits, CPU, lambda *_: None, resume=state)


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "rmsprop", "adagrad"])
def test_optimizers_take_the_multi_tensor_path_on_cpu(name: str) -> None:
    spec = job(optimizer={"name": name, "lr": 0.01}).optimizer
    optimizer = build_optimizer(spec, [torch.nn.Parameter(torch.zeros(3))], CPU)

    assert optimizer.param_groups[0]["foreach"] is True
