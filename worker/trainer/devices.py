"""The device a trainer runs on and what it offers: precision, memory format, compile."""

import resource
from collections.abc import Callable
from typing import cast

import torch
from torch import Tensor, nn

from worker.trainer.data import Split

PRECISIONS: dict[str, torch.dtype | None] = {
    "fp32": None,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}


def compiled(net: nn.Module) -> Callable[[Tensor], Tensor]:
    return cast(Callable[[Tensor], Tensor], torch.compile(net))


def pick_device(requested: str) -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("the job asks for cuda but this worker has no GPU")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def pick_precision(requested: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for fp32. `auto` never picks a slower path."""
    if requested == "auto":
        # bf16 has fp32's range (no loss scaling) and runs on tensor cores from Ampere on;
        # older GPUs get fp16 with a scaler. On a CPU, bf16 is only ever faster with AMX,
        # and even then not for every net: the Trainer probes it (levers.probe_precision).
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return None
    return PRECISIONS[requested]


def precision_name(dtype: torch.dtype | None) -> str:
    return next(name for name, known in PRECISIONS.items() if known is dtype)


def channels_last(split: Split) -> Split:
    """Images (N, C, H, W) stored channels-last; batches indexed from them stay so."""
    if split.x.dim() != 4:
        return split
    return Split(split.x.contiguous(memory_format=torch.channels_last), split.y)


def peak_memory_mb(device: torch.device) -> float:
    """The most memory training held: on CUDA the tensors' peak, on CPU the process's
    peak resident set (which counts the interpreter and torch itself, like any loop's)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10  # Linux: KiB
