"""Nets from the layer language: an nn.Sequential whose parameter names follow layer indices.

An activation belongs to its layer and adds no index, so the linear layer at index 1 owns
`1.weight` and `1.bias` and applies its activation itself. app/spec/shapes.py computes the
same names, shapes and parameter counts without torch; tests hold the two together.
"""

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from app.spec.schemas import DropoutLayer, FlattenLayer, Layer, LinearLayer

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": F.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "gelu": F.gelu,
}


class Linear(nn.Linear):
    """nn.Linear with its activation applied in place, so it owns no extra index."""

    def __init__(self, in_features: int, out_features: int, *, bias: bool, activation: str) -> None:
        super().__init__(in_features, out_features, bias=bias)
        self.activation = activation
        self._activate = ACTIVATIONS.get(activation)

    def forward(self, x: Tensor) -> Tensor:
        y = super().forward(x)
        return self._activate(y) if self._activate is not None else y

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, activation={self.activation}"


def _module(layer: Layer, shape: tuple[int, ...]) -> tuple[nn.Module, tuple[int, ...]]:
    match layer:
        case FlattenLayer():
            size = 1
            for d in shape:
                size *= d
            return nn.Flatten(), (size,)
        case DropoutLayer(p=p):
            return nn.Dropout(p), shape
        case LinearLayer(out_features=out, bias=bias, activation=activation):
            (inputs,) = shape  # the spec's shape inference has rejected anything else
            return Linear(inputs, out, bias=bias, activation=activation), (out,)
    raise AssertionError(f"unhandled layer {layer!r}")


def build_net(layers: Sequence[Layer], input_shape: Sequence[int]) -> nn.Sequential:
    shape = tuple(input_shape)
    modules = []
    for layer in layers:
        module, shape = _module(layer, shape)
        modules.append(module)
    return nn.Sequential(*modules)
