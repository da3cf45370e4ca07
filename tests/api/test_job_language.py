"""Presets, regression and validation datasets through POST /v1/jobs and the summary."""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.spec.schemas import SEED_JOB_EXAMPLE

pytestmark = pytest.mark.usefixtures("backend")


def job(**overrides: Any) -> dict[str, Any]:
    spec = {**SEED_JOB_EXAMPLE, "dataset": "synthetic", **overrides}
    return spec


def regression(**training: Any) -> dict[str, Any]:
    return job(
        dataset={"name": "synthetic", "task": "regression", "targets": 2, "input_shape": [6]},
        model={
            "layers": [
                {"type": "linear", "out_features": 16, "activation": "silu"},
                {"type": "linear", "out_features": 2},
            ]
        },
        training={"epochs": 2, "batch_size": 32, **training},
    )


def fields(response: Any) -> list[str]:
    assert response.status_code == 422, response.text
    return [d["field"] for d in response.json()["error"]["details"]]


@pytest.mark.parametrize("preset", ["mlp", "cnn", "resnet"])
def test_a_preset_job_records_the_layers_it_expanded_to(client: TestClient, preset: str) -> None:
    response = client.post("/v1/jobs", json=job(model={"preset": preset, "width": 8}))

    assert response.status_code == 201, response.text
    recorded = response.json()
    model = recorded["spec"]["model"]
    assert (model["preset"], model["width"]) == (preset, 8)
    assert model["depth"] >= 1
    assert model["layers"][-1] == {
        "type": "linear",
        "out_features": 10,
        "bias": True,
        "activation": "none",
    }
    summary = client.post(
        "/v1/models/summary",
        json={"model": {"layers": model["layers"]}, "input_shape": [1, 28, 28], "classes": 10},
    ).json()
    assert recorded["params"] == summary["params"]
    assert recorded["flops_per_sample"] == summary["flops_per_sample"]


def test_image_presets_refuse_flat_data(client: TestClient) -> None:
    spec = job(
        dataset={"name": "synthetic", "input_shape": [20]},
        model={"preset": "cnn"},
    )

    assert fields(client.post("/v1/jobs", json=spec)) == ["model.preset"]


def test_summary_expands_a_preset_and_shows_the_layers(client: TestClient) -> None:
    response = client.post(
        "/v1/models/summary",
        json={"model": {"preset": "resnet", "depth": 1}, "input_shape": [3, 32, 32], "classes": 10},
    )

    assert response.status_code == 200, response.text
    summary = response.json()
    names = [layer["name"] for layer in summary["layers"]]
    assert names[:2] == ["0", "1"]
    assert summary["model"]["preset"] == "resnet"
    assert len(summary["model"]["layers"]) == len(summary["layers"])
    assert summary["layers"][-1]["output_shape"] == [10]
    assert summary["params"] == sum(layer["params"] for layer in summary["layers"])


def test_summary_of_a_preset_needs_classes(client: TestClient) -> None:
    response = client.post(
        "/v1/models/summary", json={"model": {"preset": "mlp"}, "input_shape": [3]}
    )

    assert fields(response) == ["classes"]


def test_a_regression_job_is_accepted_with_regression_metrics(client: TestClient) -> None:
    spec = regression(target={"metric": "val_mae", "value": 0.2})

    assert client.post("/v1/jobs", json=spec).status_code == 201


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (regression(target={"metric": "val_accuracy", "value": 0.9}), "training.target.metric"),
        (
            job(
                training={
                    "epochs": 1,
                    "batch_size": 8,
                    "target": {"metric": "val_mae", "value": 0.1},
                }
            ),
            "training.target.metric",
        ),
        (
            {**regression(), "schedule": {"name": "plateau", "metric": "val_accuracy"}},
            "schedule.metric",
        ),
        (
            {**regression(), "model": {"layers": [{"type": "linear", "out_features": 3}]}},
            "model.layers[0].out_features",
        ),
    ],
)
def test_metrics_and_widths_must_fit_the_task(
    client: TestClient, spec: dict[str, Any], field: str
) -> None:
    assert fields(client.post("/v1/jobs", json=spec)) == [field]
    assert client.get("/v1/jobs").json()["items"] == []


def test_val_dataset_must_exist_and_not_come_with_a_val_fraction(client: TestClient) -> None:
    unknown = job(training={"epochs": 1, "batch_size": 8, "val_dataset": "ds_nope"})
    both = job(training={"epochs": 1, "batch_size": 8, "val_dataset": "ds_x", "val_fraction": 0.1})

    assert fields(client.post("/v1/jobs", json=unknown)) == ["training.val_dataset"]
    assert fields(client.post("/v1/jobs", json=both)) == ["training"]


@pytest.mark.parametrize(
    ("layer", "field"),
    [
        ({"type": "conv2d", "out_channels": 4, "kernel_size": 40}, "model.layers[0].kernel_size"),
        ({"type": "maxpool2d", "kernel_size": 29}, "model.layers[0].kernel_size"),
        ({"type": "conv2d", "out_channels": 0, "kernel_size": 3}, "model.layers[0].out_channels"),
        (
            {"type": "conv2d", "out_channels": 4, "kernel_size": 3, "activation": "swish"},
            "model.layers[0].activation",
        ),
        ({"type": "transformer"}, "model.layers[0].type"),
    ],
)
def test_layers_that_cannot_train_are_422_naming_the_field(
    client: TestClient, layer: dict[str, Any], field: str
) -> None:
    spec = job(
        model={"layers": [layer, {"type": "flatten"}, {"type": "linear", "out_features": 10}]}
    )

    assert field in fields(client.post("/v1/jobs", json=spec))


def test_a_ddp_batch_that_does_not_split_is_422_and_stores_nothing(client: TestClient) -> None:
    training = {**SEED_JOB_EXAMPLE["training"], "batch_size": 33}
    spec = job(distributed={"strategy": "ddp", "processes": 2}, training=training)

    response = client.post("/v1/jobs", json=spec)

    assert response.status_code == 422, response.text
    assert "batch_size 33 must divide evenly across 2" in response.json()["error"]["message"]
    assert client.get("/v1/jobs").json()["items"] == []
