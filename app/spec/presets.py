"""Presets: ready-made nets, each a function of the dataset's input shape and outputs.

A preset expands to the same layer list a user could have written; the job records the
expansion, so what trained is always visible and reproducible without the preset code.
"""

from typing import Any

from pydantic import TypeAdapter

from app.errors import SpecInvalid
from app.spec.layers import Layer
from app.spec.schemas import ModelSpec

LAYERS = TypeAdapter(list[Layer])
DEFAULTS = {"mlp": (128, 2), "cnn": (32, 2), "resnet": (16, 1)}
# The cnn halves the feature map per stage; it stops where another halving would vanish.
MIN_MAP = 2


def _mlp(input_shape: list[int], outputs: int, width: int, depth: int) -> list[dict[str, Any]]:
    layers: list[dict[str, Any]] = [{"type": "flatten"}] if len(input_shape) != 1 else []
    layers += [{"type": "linear", "out_features": width, "activation": "relu"}] * depth
    return [*layers, {"type": "linear", "out_features": outputs}]


def _images(preset: str, input_shape: list[int]) -> tuple[int, int]:
    if len(input_shape) != 3:
        raise SpecInvalid.at(
            "model.preset",
            f"{preset} needs images shaped (channels, height, width); the dataset's samples "
            f"are {input_shape}",
        )
    return input_shape[1], input_shape[2]


def _cnn(input_shape: list[int], outputs: int, width: int, depth: int) -> list[dict[str, Any]]:
    """Small VGG-like: per stage conv 3x3, batch norm + relu, 2x2 max pool; then a linear head."""
    height, breadth = _images("cnn", input_shape)
    layers: list[dict[str, Any]] = []
    for stage in range(depth):
        channels = width * 2**stage
        layers += [
            {
                "type": "conv2d",
                "out_channels": channels,
                "kernel_size": 3,
                "padding": 1,
                "bias": False,
            },
            {"type": "batchnorm2d", "activation": "relu"},
        ]
        if min(height, breadth) >= MIN_MAP:
            layers.append({"type": "maxpool2d", "kernel_size": 2})
            height, breadth = height // 2, breadth // 2
    return [*layers, {"type": "flatten"}, {"type": "linear", "out_features": outputs}]


def _block(channels: int, stride: int) -> dict[str, Any]:
    conv = {
        "type": "conv2d",
        "out_channels": channels,
        "kernel_size": 3,
        "padding": 1,
        "bias": False,
    }
    return {
        "type": "residual",
        "layers": [
            {**conv, "stride": stride},
            {"type": "batchnorm2d", "activation": "relu"},
            conv,
            {"type": "batchnorm2d"},
        ],
        "activation": "relu",
    }


def _resnet(input_shape: list[int], outputs: int, width: int, depth: int) -> list[dict[str, Any]]:
    """ResNet-8 (depth 1) / ResNet-20 (depth 3) for 28-32 px images: a stem, three stages of
    `depth` basic blocks at width, 2x and 4x channels (halving the map between stages),
    global average pooling and a linear head."""
    _images("resnet", input_shape)
    layers: list[dict[str, Any]] = [
        {"type": "conv2d", "out_channels": width, "kernel_size": 3, "padding": 1, "bias": False},
        {"type": "batchnorm2d", "activation": "relu"},
    ]
    for stage in range(3):
        for block in range(depth):
            stride = 2 if stage > 0 and block == 0 else 1
            layers.append(_block(width * 2**stage, stride))
    return [
        *layers,
        {"type": "adaptive_avgpool2d", "output_size": 1},
        {"type": "flatten"},
        {"type": "linear", "out_features": outputs},
    ]


BUILDERS = {"mlp": _mlp, "cnn": _cnn, "resnet": _resnet}


def expand(model: ModelSpec, input_shape: list[int], outputs: int) -> ModelSpec:
    """The model with its preset expanded into layers (a model with layers is returned as is)."""
    if model.layers is not None or model.preset is None:
        return model
    default_width, default_depth = DEFAULTS[model.preset]
    width, depth = model.width or default_width, model.depth or default_depth
    layers = BUILDERS[model.preset](input_shape, outputs, width, depth)
    return ModelSpec(
        layers=LAYERS.validate_python(layers), preset=model.preset, width=width, depth=depth
    )
