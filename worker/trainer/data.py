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
SYNTHETIC_REGRESSION_NOISE = 0.1


def synthetic_arrays(data: SyntheticData) -> tuple[np.ndarray, np.ndarray]:
    """Classification: seeded Gaussian clusters, one per class, with balanced labels.
    Regression: targets a seeded linear function of the inputs plus a little noise."""
    rng = np.random.default_rng(data.seed)
    features = math.prod(data.input_shape)
    if data.task == "regression":
        x = rng.standard_normal((data.samples, features), dtype=np.float32)
        weights = rng.standard_normal((features, data.targets), dtype=np.float32) / math.sqrt(
            features
        )
        noise = rng.standard_normal((data.samples, data.targets), dtype=np.float32)
        y = x @ weights + SYNTHETIC_REGRESSION_NOISE * noise
        return x.reshape(data.samples, *data.input_shape), y.astype(np.float32)
    centres = rng.standard_normal((data.classes, features), dtype=np.float32)
    y = rng.permutation(np.arange(data.samples) % data.classes).astype(np.int64)
    noise = rng.standard_normal((data.samples, features), dtype=np.float32) * SYNTHETIC_NOISE
    x = (centres[y] + noise).reshape(data.samples, *data.input_shape)
    return x, y


def stored_arrays(path: Path) -> tuple[np.ndarray, np.ndarray]:
    # Stored by the API after validation; allow_pickle=False all the same.
    return np.load(path / "x.npy", allow_pickle=False), np.load(path / "y.npy", allow_pickle=False)


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

    @property
    def regression(self) -> bool:
        return self.train.y.is_floating_point()


def split_indices(samples: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded permutation: the first `val_fraction` of it validates, the rest trains."""
    order = np.random.default_rng(seed).permutation(samples)
    n_val = 0 if val_fraction == 0 else min(samples - 1, max(1, round(samples * val_fraction)))
    return order[n_val:], order[:n_val]


def _tensors(x: np.ndarray, y: np.ndarray, device: torch.device) -> tuple[Tensor, Tensor]:
    """x as stored (normalised below), y as int64 labels or float32 targets (N, targets)."""
    xs = torch.from_numpy(np.ascontiguousarray(x)).to(device)
    ys = torch.from_numpy(np.ascontiguousarray(y)).to(device)
    ys = ys.float().reshape(len(ys), -1) if ys.is_floating_point() else ys.long()
    return xs, ys


def _normalizer(train_x: Tensor, normalize: str) -> tuple[Tensor, Tensor] | None:
    """(shift, scale) from the training data only, so validation stays unseen."""
    if normalize == "auto":
        # Per-pixel standardisation blows up the noise of nearly constant pixels (an image's
        # border): the seed's MLP reaches 0.92 on MNIST with /255 and mostly never without.
        normalize = "scale" if train_x.dtype == torch.uint8 else "standard"
    if normalize == "standard":
        as_float = train_x.float()
        mean, std = as_float.mean(dim=0), as_float.std(dim=0)
        # A feature that never varies in training (an image's blank border) stays at 0.
        return mean, torch.where(std > 0, std, torch.ones_like(std))
    if normalize == "scale":
        if train_x.dtype == torch.uint8:
            return torch.zeros((), device=train_x.device), torch.full(
                (), 255.0, device=train_x.device
            )
        low, high = train_x.min().float(), train_x.max().float()
        return low, (high - low).clamp_min(1e-12)
    return None


def prepare(
    x: np.ndarray,
    y: np.ndarray,
    *,
    val_fraction: float,
    seed: int,
    normalize: str,
    device: torch.device,
    val: tuple[np.ndarray, np.ndarray] | None = None,
) -> Splits:
    """Move the data to the device once, hold out validation (a split, or `val`), normalise."""
    xs, ys = _tensors(x, y, device)
    val_x: Tensor | None
    val_y: Tensor | None
    if val is None:
        train_idx, val_idx = split_indices(len(y), val_fraction, seed)
        train_i, val_i = (torch.from_numpy(i).to(device) for i in (train_idx, val_idx))
        train_x, train_y = xs[train_i], ys[train_i]
        val_x, val_y = (xs[val_i], ys[val_i]) if len(val_idx) else (None, None)
    else:
        train_x, train_y = xs, ys
        val_x, val_y = _tensors(*val, device)
    norm = _normalizer(train_x, normalize)
    train_x = train_x.float()
    val_x = val_x.float() if val_x is not None else None
    if norm is not None:
        shift, scale = norm
        train_x = (train_x - shift) / scale
        val_x = (val_x - shift) / scale if val_x is not None else None
    validation = Split(val_x, val_y) if val_x is not None and val_y is not None else None
    return Splits(Split(train_x, train_y), validation)


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
