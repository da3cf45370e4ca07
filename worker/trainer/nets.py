"""Nets from the layer language: an nn.Sequential whose parameter names follow layer indices.

An activation belongs to its layer and adds no index: the layer's own module applies it
after its forward, so the linear layer at index 1 owns `1.weight` and `1.bias`. A
residual block holds its body as `layers` (`4.layers.0.weight`) and its 1x1 projection
as `projection`. app/spec/shapes.py computes the same names, shapes and parameter counts
without torch; tests hold the two together.
"""

import math
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from app.spec.layers import (
    AdaptiveAvgPool2dLayer,
    AvgPool2dLayer,
    BatchNorm1dLayer,
    BatchNorm2dLayer,
    Conv1dLayer,
    Conv2dLayer,
    DropoutLayer,
    FlattenLayer,
    Layer,
    LayerNormLayer,
    LinearLayer,
    MaxPool2dLayer,
    ResidualLayer,
)
from app.spec.shapes import Shape, projection_strides, summarize

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": F.relu,
    "leaky_relu": F.leaky_relu,
    "gelu": F.gelu,
    "silu": F.silu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
}

M = TypeVar("M", bound=nn.Module)


def activated(base: type[M]) -> Callable[..., nn.Module]:
    """`base` with an `activation` keyword, applied to its output, and no extra submodule."""

    class Activated(base):  # type: ignore[valid-type, misc]
        def __init__(self, *args: Any, activation: str = "none", **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.activation = activation
            self._activate = ACTIVATIONS.get(activation)

        def forward(self, x: Tensor) -> Tensor:
            y: Tensor = super().forward(x)
            return self._activate(y) if self._activate is not None else y

        def extra_repr(self) -> str:
            return f"{super().extra_repr()}, activation={self.activation}"

    Activated.__name__ = Activated.__qualname__ = base.__name__
    return Activated


Linear = activated(nn.Linear)
Conv1d = activated(nn.Conv1d)
Conv2d = activated(nn.Conv2d)
BatchNorm1d = activated(nn.BatchNorm1d)
BatchNorm2d = activated(nn.BatchNorm2d)
LayerNorm = activated(nn.LayerNorm)


class Residual(nn.Module):
    def __init__(
        self, layers: nn.Sequential, projection: nn.Module | None, activation: str
    ) -> None:
        super().__init__()
        self.layers = layers
        self.projection = projection
        self._activate = ACTIVATIONS.get(activation)

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.projection is None else self.projection(x)
        y = self.layers(x) + shortcut
        return self._activate(y) if self._activate is not None else y


def _projection(shape: Shape, out: Shape) -> nn.Module:
    if len(shape) == 1:
        return nn.Linear(shape[0], out[0])
    strides = projection_strides(shape, out)
    assert strides is not None  # the spec's shape inference has rejected anything else
    conv: Callable[..., nn.Module] = nn.Conv1d if len(shape) == 2 else nn.Conv2d
    return conv(shape[0], out[0], kernel_size=1, stride=strides, bias=False)


def _module(layer: Layer, shape: Shape, out: Shape) -> nn.Module:
    match layer:
        case FlattenLayer():
            return nn.Flatten()
        case DropoutLayer(p=p):
            return nn.Dropout(p)
        case LinearLayer():
            return Linear(
                shape[0], layer.out_features, bias=layer.bias, activation=layer.activation
            )
        case Conv1dLayer() | Conv2dLayer():
            conv = Conv1d if isinstance(layer, Conv1dLayer) else Conv2d
            return conv(
                shape[0],
                layer.out_channels,
                layer.kernel_size,
                stride=layer.stride,
                padding=layer.padding,
                dilation=layer.dilation,
                groups=layer.groups,
                bias=layer.bias,
                activation=layer.activation,
            )
        case MaxPool2dLayer():
            return nn.MaxPool2d(layer.kernel_size, stride=layer.stride, padding=layer.padding)
        case AvgPool2dLayer():
            return nn.AvgPool2d(layer.kernel_size, stride=layer.stride, padding=layer.padding)
        case AdaptiveAvgPool2dLayer():
            return nn.AdaptiveAvgPool2d(layer.output_size)
        case BatchNorm1dLayer():
            return BatchNorm1d(shape[0], activation=layer.activation)
        case BatchNorm2dLayer():
            return BatchNorm2d(shape[0], activation=layer.activation)
        case LayerNormLayer():
            return LayerNorm(list(shape), activation=layer.activation)
        case ResidualLayer():
            body = build_net(layer.layers, shape)
            projection = None if out == shape else _projection(shape, out)
            return Residual(body, projection, layer.activation)
    raise AssertionError(f"unhandled layer {layer!r}")


def build_net(layers: Sequence[Layer], input_shape: Sequence[int]) -> nn.Sequential:
    """The torch net for `layers`; shapes come from the same inference the API validated with."""
    summary = summarize(layers, input_shape, None)
    shapes = [tuple(input_shape), *(s.output_shape for s in summary.layers)]
    modules = [_module(layer, shapes[i], shapes[i + 1]) for i, layer in enumerate(layers)]
    assert math.prod(shapes[-1]) >= 1
    return nn.Sequential(*modules)
