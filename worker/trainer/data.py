"""Data for one job: load arrays, split train/validation, normalise, and batch by index.

Small datasets live on the training device as tensors and are batched by indexing with
a shuffled permutation: no DataLoader, no worker processes, no per-batch host copies.
"""

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from app.spec.schemas import SyntheticData

# Class centres are one unit apart per feature on average; this much noise per feature
# keeps the synthetic task learnable but not separable at the first step.
SYNTHETIC_NOISE = 2.0


def synthetic_arrays(data: SyntheticData) -> tuple[np.ndarray, np.ndarray]:
    """Seeded Gaussian clusters, one per class, with balanced labels."""
    rng = np.random.default_rng(data.seed)
    features = math.prod(data.input_shape)
    centres = rng.standard_normal((data.classes, features), dtype=np.float32)
    y = rng.permutation(np.arange(data.samples) % data.classes).astype(np.int64)
    noise = rng.standard_normal((data.samples, features), dtype=np.float32) * SYNTHETIC_NOISE
    x = (centres[y] + noise).reshape(data.samples, *data.input_shape)
    return x, y


def stored_arrays(path: Path) -> tuple[np.ndarray, np.ndarray]:
    # Stored by the API after validation; allow_pickle=False all the same.
    x = np.load(path / "x.npy", allow_pickle=False)
    y = np.load(path / "y.npy", allow_pickle=False).astype(np.int64, copy=False)
    return x, y


@dataclass(frozen=True)
class Split:
    x: Tensor
    y: Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass(frozen=True)
class Splits:
    train: Split
    val: Split | None


def split_indices(samples: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded permutation: the first `val_fraction` of it validates, the rest trains."""
    order = np.random.default_rng(seed).permutation(samples)
    n_val = 0 if val_fraction == 0 else min(samples - 1, max(1, round(samples * val_fraction)))
    return order[n_val:], order[:n_val]


def prepare(
    x: np.ndarray,
    y: np.ndarray,
    *,
    val_fraction: float,
    seed: int,
    normalize: str,
    device: torch.device,
) -> Splits:
    """Move the data to the device once, split it, and standardise with training statistics."""
    train_idx, val_idx = split_indices(len(y), val_fraction, seed)
    xs = torch.from_numpy(np.ascontiguousarray(x)).to(device).float()
    ys = torch.from_numpy(np.ascontiguousarray(y)).to(device)
    train_i = torch.from_numpy(train_idx).to(device)
    train_x = xs[train_i]
    val_x = xs[torch.from_numpy(val_idx).to(device)] if len(val_idx) else None
    if normalize == "standard":
        # One scalar mean and std from the training split only, so validation stays unseen.
        mean, std = train_x.mean(), train_x.std().clamp_min(1e-8)
        train_x = (train_x - mean) / std
        val_x = (val_x - mean) / std if val_x is not None else None
    train = Split(train_x, ys[train_i])
    val = Split(val_x, ys[torch.from_numpy(val_idx).to(device)]) if val_x is not None else None
    return Splits(train, val)


def batches(
    split: Split, batch_size: int, generator: torch.Generator
) -> Iterator[tuple[Tensor, Tensor]]:
    """One epoch of shuffled batches; the last one may be smaller (every sample once)."""
    n = len(split)
    if batch_size >= n:
        yield split.x, split.y  # full batch: order is irrelevant to the gradient
        return
    order = torch.randperm(n, generator=generator, device="cpu").to(split.x.device)
    for start in range(0, n, batch_size):
        index = order[start : start + batch_size]
        yield split.x[index], split.y[index]


def eval_batches(split: Split, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
    for start in range(0, len(split), batch_size):
        yield split.x[start : start + batch_size], split.y[start : start + batch_size]
