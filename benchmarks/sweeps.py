"""Sweeps: what the advisor finds for the seed, and what halving saves against a grid.

1. `POST /v1/advise` for the seed's 784-10-10-10 MLP (SGD 0.01, momentum 0.9, batch 32)
   on 8,000 MNIST digits (2,000 validate), target val_accuracy 0.92 (and 0.90). The base runs as a
   trial of the same sweep, so both times to target are measured on the same worker in
   the same run: the speed-up is the base's time over the winner's (one seed each).
2. One space, swept as a grid and by halving, maximising val_accuracy after 9 epochs:
   the compute (training + evaluation seconds of every trial job) of each, and whether
   both crown the same configuration.

Trials run one at a time on one worker, so no trial's time is measured beside another's,
each on one thread.
"""

import time
from typing import Any

from benchmarks.accuracy import MAX_EPOCHS, TARGET
from benchmarks.engine import SEED_MLP
from benchmarks.service import TRAIN_SAMPLES, Service, running

SWEEP_POLL_S = 1.0
# 0.92 is the seed's own target, at the ceiling of this net on 8,000 digits; 0.90 is
# below it, where more configurations can reach the target at all.
ADVISED_TARGETS = (TARGET, 0.90)
SEED_OPTIMIZER = {"name": "sgd", "lr": 0.01, "momentum": 0.9}
# Checkpoints only where halving needs them (the end of each rung's job).
FINAL_ONLY = {"every_epochs": 10_000, "keep": "last"}
COMPARED_EPOCHS = 9
COMPARED_SPACE: dict[str, Any] = {
    "optimizer": [
        {"name": "sgd", "lr": 0.01, "momentum": 0.9},
        {"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True},
        {"name": "adam", "lr": 0.001},
        {"name": "adam", "lr": 0.01},
        {"name": "rmsprop", "lr": 0.001},
        {"name": "adagrad", "lr": 0.05},
    ],
    "training.batch_size": [128, 512],
}


def base(dataset_id: str, epochs: int) -> dict[str, Any]:
    return {
        "name": "seed",
        "dataset": dataset_id,
        "model": SEED_MLP,
        "optimizer": SEED_OPTIMIZER,
        "training": {"epochs": epochs, "batch_size": 32, "val_fraction": 0.2, "seed": 0},
        "checkpoint": FINAL_ONLY,
        # One thread: on a shared, oversubscribed CPU two threads wait on each other at
        # every kernel; every trial, the base included, runs the same way.
        "resources": {"threads": 1},
    }


def finished(service: Service, created: Any) -> dict[str, Any]:
    """Wait for a sweep created by `created` (a response) to end; the sweep."""
    assert created.status_code == 201, created.text
    sweep_id = created.json()["id"]
    while (sweep := service.client.get(f"/v1/sweeps/{sweep_id}").json())["status"] == "running":
        time.sleep(SWEEP_POLL_S)
    assert sweep["status"] == "succeeded", sweep["reason"]
    return dict(sweep)


def advise(service: Service, target: float) -> dict[str, Any]:
    started = time.perf_counter()
    sweep = finished(
        service,
        service.client.post(
            "/v1/advise",
            json={
                "base": base(service.dataset_id, MAX_EPOCHS),
                "target": {"metric": "val_accuracy", "value": target},
                "budget": {"max_trials": 13, "max_parallel": 1},
            },
        ),
    )
    seed_trial = sweep["trials"][0]
    best = sweep["best"]
    return {
        "seed_time_to_target_s": seed_trial["time_to_target_s"],
        "best_time_to_target_s": best["time_to_target_s"],
        "speedup": best["speedup"],
        "best_config": best["config"],
        "trials": len(sweep["trials"]),
        "reached": sum(1 for t in sweep["trials"] if t["time_to_target_s"] is not None),
        "compute_s": sweep["compute_s"],
        "wall_s": time.perf_counter() - started,
        "summary": sweep["summary"],
    }


def compare(service: Service) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for strategy in ({"name": "grid"}, {"name": "halving", "eta": 3, "min_epochs": 1}):
        started = time.perf_counter()
        sweep = finished(
            service,
            service.client.post(
                "/v1/sweeps",
                json={
                    "base": base(service.dataset_id, COMPARED_EPOCHS),
                    "space": COMPARED_SPACE,
                    "strategy": strategy,
                    "objective": {"maximize": "val_accuracy"},
                    "budget": {"max_trials": 12, "max_parallel": 1},
                },
            ),
        )
        figures[strategy["name"]] = {
            "compute_s": sweep["compute_s"],
            "epochs": sum(t["epochs"] or 0 for t in sweep["trials"]),
            "wall_s": time.perf_counter() - started,
            "best_config": sweep["best"]["config"],
            "best_val_accuracy": sweep["best"]["best"],
        }
    grid, halving = figures["grid"], figures["halving"]
    figures["compute_ratio"] = halving["compute_s"] / grid["compute_s"]
    figures["same_winner"] = grid["best_config"] == halving["best_config"]
    return figures


def run() -> dict[str, Any]:
    # All 10,000 digits: jobs hold 20% out, so 8,000 train and 2,000 validate.
    with running(samples=TRAIN_SAMPLES * 5 // 4) as service:
        return {
            **{f"advise_{round(t * 100)}": advise(service, t) for t in ADVISED_TARGETS},
            "halving_vs_grid": compare(service),
        }
