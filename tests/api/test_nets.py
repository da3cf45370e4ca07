"""POST /v1/models/summary: per-layer shapes, parameters and FLOPs of a net, before training."""

import copy
import struct
from typing import Any

import httpx2
import numpy as np
import numpy.typing as npt
import pytest
from fastapi.testclient import TestClient

from app.spec.schemas import SEED_JOB_EXAMPLE
from tests.client import error_of

SEED_MODEL: dict[str, Any] = copy.deepcopy(SEED_JOB_EXAMPLE["model"])
UBYTE = 0x08


def idx_bytes(array: npt.NDArray[np.uint8]) -> bytes:
    header = bytes([0, 0, UBYTE, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


@pytest.fixture
def tiny_dataset(client: TestClient) -> dict[str, Any]:
    """12 images of 4x4 pixels in 3 classes, uploaded as IDX."""
    images = np.arange(12 * 16, dtype=np.uint8).reshape(12, 4, 4)
    labels = (np.arange(12) % 3).astype(np.uint8)
    response = client.post(
        "/v1/datasets",
        files={"images": ("images", idx_bytes(images)), "labels": ("labels", idx_bytes(labels))},
        data={"format": "idx", "name": "tiny"},
    )
    assert response.status_code == 201, response.text
    dataset: dict[str, Any] = response.json()
    return dataset


def summary(client: TestClient, **body: Any) -> httpx2.Response:
    return client.post("/v1/models/summary", json=body)


def test_summary_lists_every_layer_of_the_seed_mlp_when_given_mnist_shapes(
    client: TestClient,
) -> None:
    response = summary(client, model=SEED_MODEL, input_shape=[1, 28, 28], classes=10)

    assert response.status_code == 200, response.text
    net = response.json()
    layers = net["layers"]
    assert net["input_shape"] == [1, 28, 28]
    assert [layer["index"] for layer in layers] == [0, 1, 2, 3]
    assert [layer["name"] for layer in layers] == ["0", "1", "2", "3"]
    assert [layer["type"] for layer in layers] == ["flatten", "linear", "linear", "linear"]
    assert [layer["output_shape"] for layer in layers] == [[784], [10], [10], [10]]
    assert [layer["params"] for layer in layers] == [0, 7850, 110, 110]
    assert net["params"] == 8070
    # A multiply-add counts 2; a bias add or an activation counts 1 per output.
    assert [layer["flops"] for layer in layers] == [0, 15_700, 220, 210]
    assert net["flops_per_sample"] == sum(layer["flops"] for layer in layers)


def test_summary_agrees_with_the_submitted_job_on_params_and_flops(client: TestClient) -> None:
    net = summary(client, model=SEED_MODEL, input_shape=[1, 28, 28], classes=10).json()

    job = client.post("/v1/jobs", json=SEED_JOB_EXAMPLE).json()

    assert (job["params"], job["flops_per_sample"]) == (net["params"], net["flops_per_sample"])


def test_summary_takes_shapes_from_the_dataset_when_given_a_dataset_id(
    client: TestClient, tiny_dataset: dict[str, Any]
) -> None:
    model = {
        "layers": [
            {"type": "flatten"},
            {"type": "linear", "out_features": 8, "activation": "relu"},
            {"type": "linear", "out_features": 3},
        ]
    }

    response = summary(client, model=model, dataset=tiny_dataset["id"])

    assert response.status_code == 200, response.text
    net = response.json()
    assert net["input_shape"] == [1, 4, 4]
    assert [layer["output_shape"] for layer in net["layers"]] == [[16], [8], [3]]
    assert [layer["params"] for layer in net["layers"]] == [0, 16 * 8 + 8, 8 * 3 + 3]
    assert net["params"] == 163


def test_summary_returns_422_naming_the_last_layer_when_dataset_has_other_classes(
    client: TestClient, tiny_dataset: dict[str, Any]
) -> None:
    error = error_of(summary(client, model=SEED_MODEL, dataset=tiny_dataset["id"]), 422)

    assert error["code"] == "invalid_spec"
    assert [d["field"] for d in error["details"]] == ["model.layers[3].out_features"]


def test_summary_returns_422_when_neither_dataset_nor_input_shape_is_given(
    client: TestClient,
) -> None:
    error = error_of(summary(client, model=SEED_MODEL, classes=10), 422)

    assert error["code"] == "invalid_spec"
    assert error["details"]


def test_summary_returns_422_when_both_dataset_and_input_shape_are_given(
    client: TestClient, tiny_dataset: dict[str, Any]
) -> None:
    response = summary(client, model=SEED_MODEL, dataset=tiny_dataset["id"], input_shape=[16])

    assert error_of(response, 422)["code"] == "invalid_spec"


def test_summary_returns_422_naming_the_dataset_when_it_is_unknown(client: TestClient) -> None:
    error = error_of(summary(client, model=SEED_MODEL, dataset="ds_unknown"), 422)

    assert error["code"] == "invalid_spec"
    assert [d["field"] for d in error["details"]] == ["dataset"]


def test_summary_returns_422_naming_the_last_layer_when_classes_differ_from_its_width(
    client: TestClient,
) -> None:
    response = summary(client, model=SEED_MODEL, input_shape=[1, 28, 28], classes=5)

    error = error_of(response, 422)

    assert error["code"] == "invalid_spec"
    assert [d["field"] for d in error["details"]] == ["model.layers[3].out_features"]


def test_summary_returns_422_naming_the_layer_when_linear_gets_an_unflattened_input(
    client: TestClient,
) -> None:
    model = {"layers": [{"type": "linear", "out_features": 10}]}

    response = summary(client, model=model, input_shape=[1, 28, 28], classes=10)

    assert [d["field"] for d in error_of(response, 422)["details"]] == ["model.layers[0]"]
