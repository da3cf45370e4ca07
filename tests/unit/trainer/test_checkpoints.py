"""Checkpoint files and resume: a run stopped after epoch k and resumed from its checkpoint
ends exactly where the uninterrupted run ends; warm starts load and freeze what they say."""

from pathlib import Path
from typing import Any

import pytest
import torch

from app.spec import JobSpec
from app.spec.schemas import SyntheticData
from worker.trainer import checkpoints, data
from worker.trainer.checkpoints import WarmStart
from worker.trainer.loop import Trainer
from worker.trainer.run import DirectoryStore
from worker.trainer.stopping import Stopped, StopRequest

CPU = torch.device("cpu")


def spec(epochs: int, **overrides: Any) -> JobSpec:
    return JobSpec.model_validate(
        {
            "dataset": {"name": "synthetic", "samples": 256, "classes": 3, "input_shape": [6]},
            "model": {
                "layers": [
                    {"type": "linear", "out_features": 16, "activation": "relu"},
                    {"type": "dropout", "p": 0.2},
                    {"type": "batchnorm1d"},
                    {"type": "linear", "out_features": 3},
                ]
            },
            "optimizer": {"name": "adam", "lr": 0.01},
            "training": {"epochs": epochs, "batch_size": 32},
            **overrides,
        }
    )


def train(
    job: JobSpec, store: DirectoryStore | None, **kwargs: Any
) -> tuple[Trainer, dict[str, Any], list[tuple[str, dict[str, Any]]]]:
    assert isinstance(job.dataset, SyntheticData)
    x, y = data.synthetic_arrays(job.dataset)
    splits = data.prepare(x, y, val_fraction=0.2, seed=0, normalize="standard", device=CPU)
    events: list[tuple[str, dict[str, Any]]] = []
    trainer = Trainer(
        job, splits, CPU, lambda t, d: events.append((t, d)), checkpoints=store, **kwargs
    )
    return trainer, trainer.run(), events


def saved(events: list[tuple[str, dict[str, Any]]], kind: str) -> list[dict[str, Any]]:
    return [d for t, d in events if t == "checkpoint" and d["kind"] == kind]


@pytest.mark.parametrize(
    "schedule",
    [
        {"name": "constant"},
        {"name": "step", "step_epochs": 1, "gamma": 0.5},
        {"name": "cosine"},
        {"name": "onecycle"},
        {"name": "plateau", "patience": 0, "factor": 0.5},
    ],
)
def test_resumed_run_ends_exactly_where_the_uninterrupted_run_ends(
    tmp_path: Path, schedule: dict[str, Any]
) -> None:
    store = DirectoryStore(tmp_path, "checkpoints/job")
    _, whole, _ = train(spec(4, schedule=schedule), store)
    _, _, events = train(spec(4, schedule=schedule), store)
    second = saved(events, "epoch")[1]  # after epoch 2
    directory = tmp_path / second["path"]
    weights = checkpoints.read_weights(directory, second["sha256"])
    state = checkpoints.read_state(directory, second["state_sha256"])

    _, result, resumed_events = train(
        spec(4, schedule=schedule), store, warm_start=WarmStart(weights, []), resume=state
    )

    assert result["final"] == whole["final"]
    assert result["epochs"] == 4 and result["steps"] == whole["steps"]
    assert [d["epoch"] for t, d in resumed_events if t == "metric" and d["scope"] == "epoch"] == [
        3,
        4,
    ]


def test_a_run_stopped_mid_epoch_resumes_from_its_stop_checkpoint_exactly(
    tmp_path: Path,
) -> None:
    store = DirectoryStore(tmp_path, "checkpoints/job")
    _, whole, _ = train(spec(4), store)
    stop = StopRequest()
    events: list[tuple[str, dict[str, Any]]] = []

    def emit(kind: str, payload: dict[str, Any]) -> None:
        events.append((kind, payload))
        # A step metric comes every step here; ask to stop three batches into epoch 2.
        if kind == "metric" and payload["step"] == 10:
            stop.requested = True

    job = spec(4)
    assert isinstance(job.dataset, SyntheticData)
    x, y = data.synthetic_arrays(job.dataset)
    splits = data.prepare(x, y, val_fraction=0.2, seed=0, normalize="standard", device=CPU)
    stopped = Trainer(
        job, splits, CPU, emit, checkpoints=store, step_metric_interval_s=0.0, stop=stop
    )
    with pytest.raises(Stopped):
        stopped.run()
    [taken] = saved(events, "stop")
    assert (taken["epoch"], taken["step"]) == (1, 10)
    directory = tmp_path / taken["path"]
    weights = checkpoints.read_weights(directory, taken["sha256"])
    state = checkpoints.read_state(directory, taken["state_sha256"])

    # Stopped again before its first step: the new checkpoint keeps the place in the epoch.
    again: list[tuple[str, dict[str, Any]]] = []
    with pytest.raises(Stopped):
        Trainer(
            job,
            splits,
            CPU,
            lambda kind, payload: again.append((kind, payload)),
            checkpoints=store,
            warm_start=WarmStart(weights, []),
            resume=state,
            stop=StopRequest(requested=True),
        ).run()
    [retaken] = saved(again, "stop")
    directory = tmp_path / retaken["path"]
    weights = checkpoints.read_weights(directory, retaken["sha256"])
    state = checkpoints.read_state(directory, retaken["state_sha256"])

    _, result, resumed_events = train(
        spec(4), store, warm_start=WarmStart(weights, []), resume=state, reported_epoch=1
    )

    assert result["final"] == whole["final"]
    assert result["steps"] == whole["steps"]
    assert [d["epoch"] for t, d in resumed_events if t == "metric" and d["scope"] == "epoch"] == [
        2,
        3,
        4,
    ]


def test_checkpoint_files_are_safetensors_with_their_hashes(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path, "checkpoints/job")
    trainer, _, events = train(spec(2, checkpoint={"every_epochs": 2}), store)

    assert [d["epoch"] for d in saved(events, "epoch")] == [2]
    (final,) = saved(events, "final")
    directory = tmp_path / final["path"]
    assert checkpoints.sha256(directory / checkpoints.WEIGHTS) == final["sha256"]
    weights = checkpoints.read_weights(directory, final["sha256"])
    assert set(weights) == set(trainer.net.state_dict())
    assert final["tensors"]["0.weight"] == {"dtype": "F32", "shape": [16, 6]}
    assert not list((tmp_path / "checkpoints/job").glob(".staging-*"))


def test_a_file_that_does_not_match_its_hash_is_refused(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path, "checkpoints/job")
    _, _, events = train(spec(1), store)
    (final,) = saved(events, "final")
    directory = tmp_path / final["path"]
    (directory / checkpoints.STATE).write_bytes(b"tampered")

    with pytest.raises(checkpoints.CheckpointCorrupt):
        checkpoints.read_state(directory, final["state_sha256"])


def test_warm_start_loads_weights_and_frozen_parameters_stay_bit_identical(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path, "checkpoints/a")
    _, _, events = train(spec(2), store)
    (final,) = saved(events, "final")
    weights = checkpoints.read_weights(tmp_path / final["path"], final["sha256"])

    second, _, _ = train(spec(2), None, warm_start=WarmStart(weights, ["0."]))

    after = second.net.state_dict()
    assert torch.equal(after["0.weight"], weights["0.weight"])
    assert torch.equal(after["0.bias"], weights["0.bias"])
    assert not torch.equal(after["3.weight"], weights["3.weight"])
    assert all(
        p.requires_grad is False for n, p in second.net.named_parameters() if n.startswith("0.")
    )
    optimized = {id(p) for group in second.optimizer.param_groups for p in group["params"]}
    assert id(second.net.get_parameter("0.weight")) not in optimized
