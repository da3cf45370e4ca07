"""The layer language: every layer a job's `model.layers` may hold.

A layer's activation belongs to it and adds no index, so parameter names follow the
layer's position (`3.weight`); a residual block's body is nested (`4.layers.0.weight`)
and its 1x1 projection, when shapes differ, is `4.projection.weight`.
"""

from typing import Annotated, Literal

from pydantic import Field
from typing_extensions import TypeAliasType

from app.spec.base import Pair, Strict

MAX_WIDTH = 65_536
MAX_KERNEL = 64
MAX_NESTED_LAYERS = 64
# Residual blocks inside residual blocks, counted from the top level (1). Everything that
# walks a net recurses once or twice per level: pydantic's validation (a 422 past about
# 255), its JSON serialization of a stored spec (a 500 past about 127: every job route
# answers the spec), and the trainer's torch modules (RecursionError past about 120 in
# named_parameters and state_dict). Real nets nest two or three; this sits well below all.
MAX_RESIDUAL_DEPTH = 32

# Named aliases become named components of the OpenAPI document (`Activation`, `Layer`).
Activation = TypeAliasType(
    "Activation", Literal["relu", "leaky_relu", "gelu", "silu", "tanh", "sigmoid", "none"]
)
Size = Annotated[int, Field(ge=1, le=MAX_KERNEL)]
Pad = Annotated[int, Field(ge=0, le=MAX_KERNEL)]
# Two-dimensional sizes are one int (square) or [height, width].
Size2d = Size | Pair[tuple[Size, Size]]
Pad2d = Pad | Pair[tuple[Pad, Pad]]


class FlattenLayer(Strict):
    type: Literal["flatten"]


class DropoutLayer(Strict):
    type: Literal["dropout"]
    p: float = Field(0.5, ge=0.0, lt=1.0)


class LinearLayer(Strict):
    type: Literal["linear"]
    out_features: int = Field(ge=1, le=MAX_WIDTH)
    bias: bool = True
    activation: Activation = "none"


class Conv1dLayer(Strict):
    """Input (channels, length)."""

    type: Literal["conv1d"]
    out_channels: int = Field(ge=1, le=MAX_WIDTH)
    kernel_size: Size
    stride: Size = 1
    padding: Pad | Literal["same"] = 0
    dilation: Size = 1
    groups: int = Field(1, ge=1, le=MAX_WIDTH)
    bias: bool = True
    activation: Activation = "none"


class Conv2dLayer(Strict):
    """Input (channels, height, width)."""

    type: Literal["conv2d"]
    out_channels: int = Field(ge=1, le=MAX_WIDTH)
    kernel_size: Size2d
    stride: Size2d = 1
    padding: Pad2d | Literal["same"] = 0
    dilation: Size2d = 1
    groups: int = Field(1, ge=1, le=MAX_WIDTH)
    bias: bool = True
    activation: Activation = "none"


class MaxPool2dLayer(Strict):
    type: Literal["maxpool2d"]
    kernel_size: Size2d
    stride: Size2d | None = Field(None, description="Default: the kernel size.")
    padding: Pad2d = 0


class AvgPool2dLayer(Strict):
    type: Literal["avgpool2d"]
    kernel_size: Size2d
    stride: Size2d | None = Field(None, description="Default: the kernel size.")
    padding: Pad2d = 0


class AdaptiveAvgPool2dLayer(Strict):
    type: Literal["adaptive_avgpool2d"]
    output_size: (
        Annotated[int, Field(ge=1, le=4096)]
        | Pair[tuple[Annotated[int, Field(ge=1, le=4096)], Annotated[int, Field(ge=1, le=4096)]]]
    ) = 1


class BatchNorm1dLayer(Strict):
    """Input (features,) or (channels, length)."""

    type: Literal["batchnorm1d"]
    activation: Activation = "none"


class BatchNorm2dLayer(Strict):
    """Input (channels, height, width)."""

    type: Literal["batchnorm2d"]
    activation: Activation = "none"


class LayerNormLayer(Strict):
    """Normalises over the whole of each sample's shape, with a learned scale and shift."""

    type: Literal["layernorm"]
    activation: Activation = "none"


class ResidualLayer(Strict):
    """`activation(layers(x) + x)`; when the body changes the shape, x goes through a 1x1
    projection (a linear layer for flat inputs, a bias-free 1x1 convolution for maps)."""

    type: Literal["residual"]
    layers: list["Layer"] = Field(min_length=1, max_length=MAX_NESTED_LAYERS)
    activation: Activation = "none"


Layer = TypeAliasType(
    "Layer",
    Annotated[
        FlattenLayer
        | DropoutLayer
        | LinearLayer
        | Conv1dLayer
        | Conv2dLayer
        | MaxPool2dLayer
        | AvgPool2dLayer
        | AdaptiveAvgPool2dLayer
        | BatchNorm1dLayer
        | BatchNorm2dLayer
        | LayerNormLayer
        | ResidualLayer,
        Field(discriminator="type"),
    ],
)
ResidualLayer.model_rebuild()

LAYER_TYPES = (
    "flatten",
    "dropout",
    "linear",
    "conv1d",
    "conv2d",
    "maxpool2d",
    "avgpool2d",
    "adaptive_avgpool2d",
    "batchnorm1d",
    "batchnorm2d",
    "layernorm",
    "residual",
)


def too_deep(layers: object, path: str) -> str | None:
    """The path of the first residual block nested deeper than MAX_RESIDUAL_DEPTH in raw,
    unvalidated `layers`, or None. Iterative, so no nesting can exhaust the stack here."""
    stack: list[tuple[object, str, int]] = [(layers, path, 0)]
    while stack:
        items, where, depth = stack.pop()
        if not isinstance(items, list):
            continue
        for index, item in enumerate(items):
            if not (isinstance(item, dict) and item.get("type") == "residual"):
                continue
            if depth + 1 > MAX_RESIDUAL_DEPTH:
                return f"{where}[{index}]"
            stack.append((item.get("layers"), f"{where}[{index}].layers", depth + 1))
    return None


def pair(value: int | tuple[int, int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else value
