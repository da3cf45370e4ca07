"""Checkpoint files: weights as safetensors, training state for resume, written atomically.

Weights are always safetensors (what users download and upload). The training state
(optimizer, schedule, RNG, epoch, step, metric history) is only ever written and read by
the service itself; it is still read with `weights_only=True`, and both files' sha256,
recorded in the database, are checked before they are loaded.
"""

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from app.jobs.protocol import CheckpointFiles
from app.spec.compat import canonical
from app.storage import Storage

WEIGHTS = "weights.safetensors"
STATE = "state.pt"
SAFETENSORS_DTYPES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}
HASH_CHUNK = 1 << 20


class CheckpointCorrupt(Exception):
    """A checkpoint file does not hash to what the database recorded."""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def write(
    storage: Storage, relative: str, weights: Mapping[str, Tensor], state: dict[str, Any] | None
) -> dict[str, Any]:
    """Write the checkpoint directory `relative` atomically (Storage.writing), so a crash
    never leaves a checkpoint that looks whole but is not; what the database records."""
    tensors = {name: t.detach().contiguous().cpu() for name, t in weights.items()}
    with storage.writing(relative) as staging:
        save_file(tensors, staging / WEIGHTS)
        if state is not None:
            torch.save(state, staging / STATE)
    final = storage.path(relative)
    return {
        "tensors": {
            name: {"dtype": SAFETENSORS_DTYPES[t.dtype], "shape": list(t.shape)}
            for name, t in tensors.items()
        },
        "bytes": (final / WEIGHTS).stat().st_size,
        "sha256": sha256(final / WEIGHTS),
        "state_sha256": sha256(final / STATE) if state is not None else None,
    }


def read_weights(directory: Path, expected_sha256: str) -> dict[str, Tensor]:
    """The weights by their names in the bare net, after checking the file's hash."""
    path = directory / WEIGHTS
    if sha256(path) != expected_sha256:
        raise CheckpointCorrupt(f"{path} does not match its recorded sha256")
    return {canonical(name): tensor for name, tensor in load_file(path).items()}


def read_state(directory: Path, expected_sha256: str) -> dict[str, Any]:
    path = directory / STATE
    if sha256(path) != expected_sha256:
        raise CheckpointCorrupt(f"{path} does not match its recorded sha256")
    state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    return state


@dataclass(frozen=True)
class WarmStart:
    """Weights to load before training (by their names in the bare net), and the
    parameter-name prefixes to freeze."""

    weights: dict[str, Tensor]
    freeze: list[str]

    def apply(self, net: nn.Module) -> None:
        _, unexpected = net.load_state_dict(self.weights, strict=False)
        assert not unexpected, unexpected  # the API planned exactly the tensors that fit
        for name, param in net.named_parameters():
            if any(name.startswith(prefix) for prefix in self.freeze):
                param.requires_grad_(False)


class CheckpointStore(Protocol):
    def save(self, weights: dict[str, Tensor], state: dict[str, Any]) -> CheckpointFiles: ...
