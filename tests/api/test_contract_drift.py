"""What the OpenAPI document says is what the API does (issue 22, item 8): Allow lists
every method, no value is coerced, checkpoint dtypes are never cast silently, and one
parameter under two names is refused."""

import copy
from pathlib import Path
from typing import Any

import pytest
import safetensors.torch
import torch
from fastapi.testclient import TestClient

from app.spec.schemas import SEED_JOB_EXAMPLE
from tests.client import error_of

SHAPES = {
    "1.weight": (10, 784),
    "1.bias": (10,),
    "2.weight": (10, 10),
    "2.bias": (10,),
    "3.weight": (10, 10),
    "3.bias": (10,),
}


def seed() -> dict[str, Any]:
    return copy.deepcopy(SEED_JOB_EXAMPLE)


def upload(client: TestClient, state: dict[str, torch.Tensor], tmp_path: Path) -> Any:
    path = tmp_path / "weights.safetensors"
    safetensors.torch.save_file(state, str(path))
    files = {"file": ("weights.safetensors", path.read_bytes(), "application/octet-stream")}
    return client.post("/v1/checkpoints", files=files)


@pytest.mark.parametrize(
    ("path", "method", "allowed"),
    [
        ("/v1/jobs", "DELETE", {"GET", "POST"}),
        ("/v1/datasets/ds_x", "POST", {"GET", "DELETE"}),
        ("/v1/keys", "PUT", {"GET", "POST"}),
    ],
)
def test_405_allow_lists_every_method_of_the_path(
    client: TestClient, path: str, method: str, allowed: set[str]
) -> None:
    response = client.request(method, path)
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == allowed


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("epochs", True),
        ("epochs", "10"),
        ("epochs", 10.5),
        ("compile", 1),
        ("compile", "false"),
        ("batch_size", True),
        ("seed", False),
        ("val_fraction", "0.2"),
    ],
)
def test_values_are_not_coerced(client: TestClient, field: str, value: Any) -> None:
    spec = seed()
    spec["training"][field] = value
    error = error_of(client.post("/v1/jobs", json=spec), 422)
    assert any(d["field"].startswith(f"training.{field}") for d in error["details"]), error


def test_arrays_still_give_pairs_and_integers_still_give_floats(client: TestClient) -> None:
    spec = seed()
    spec["optimizer"] = {"name": "adam", "lr": 1, "betas": [0.9, 0.99]}
    response = client.post("/v1/jobs", json=spec)
    assert response.status_code == 201, response.text
    assert response.json()["spec"]["optimizer"]["betas"] == [0.9, 0.99]


@pytest.mark.parametrize("dtype", [torch.bool, torch.int64])
def test_a_checkpoint_of_the_wrong_dtype_is_refused_naming_the_tensor(
    client: TestClient, tmp_path: Path, dtype: torch.dtype
) -> None:
    state = {name: torch.zeros(shape) for name, shape in SHAPES.items()}
    state["2.weight"] = state["2.weight"].to(dtype)
    checkpoint = upload(client, state, tmp_path).json()
    spec = seed() | {"init": {"checkpoint": checkpoint["id"]}}
    error = error_of(client.post("/v1/jobs", json=spec), 422)
    assert "2.weight" in error["message"]
    assert str(checkpoint["tensors"]["2.weight"]["dtype"]) in error["message"]
    assert client.get("/v1/jobs").json()["items"] == []


def test_a_float_checkpoint_still_warm_starts(client: TestClient, tmp_path: Path) -> None:
    state = {name: torch.zeros(shape, dtype=torch.bfloat16) for name, shape in SHAPES.items()}
    checkpoint = upload(client, state, tmp_path).json()
    spec = seed() | {"init": {"checkpoint": checkpoint["id"]}}
    assert client.post("/v1/jobs", json=spec).status_code == 201


def test_one_parameter_under_two_names_is_refused(client: TestClient, tmp_path: Path) -> None:
    state = {name: torch.zeros(shape) for name, shape in SHAPES.items()}
    state["module.1.weight"] = torch.ones(SHAPES["1.weight"])
    error = error_of(upload(client, state, tmp_path), 422)
    assert "'1.weight'" in error["message"] and "'module.1.weight'" in error["message"]
    assert client.get("/v1/checkpoints").json()["items"] == []
