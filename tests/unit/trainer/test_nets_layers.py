"""Every layer type and every preset: the torch net built by the trainer and the API's
shape inference agree exactly on output shapes, parameter counts and parameter names."""

from typing import Any

import pytest
import torch
from pydantic import TypeAdapter

from app.errors import SpecInvalid
from app.spec import presets
from app.spec.layers import LAYER_TYPES, Layer
from app.spec.schemas import ModelSpec
from app.spec.shapes import summarize
from worker.trainer.nets import build_net

LAYERS = TypeAdapter(list[Layer])
BATCH = 3

# (input shape, layers): each case exercises one layer type and its options.
CASES: dict[str, tuple[list[int], list[dict[str, Any]]]] = {
    "conv2d": ([3, 12, 10], [{"type": "conv2d", "out_channels": 6, "kernel_size": 3}]),
    "conv2d-stride-pad-dilation": (
        [2, 15, 11],
        [
            {
                "type": "conv2d",
                "out_channels": 4,
                "kernel_size": [3, 2],
                "stride": [2, 1],
                "padding": [1, 0],
                "dilation": 2,
                "activation": "leaky_relu",
            }
        ],
    ),
    "conv2d-groups-same": (
        [4, 9, 9],
        [
            {
                "type": "conv2d",
                "out_channels": 8,
                "kernel_size": 3,
                "padding": "same",
                "groups": 4,
                "bias": False,
                "activation": "silu",
            }
        ],
    ),
    "conv1d": (
        [3, 20],
        [
            {
                "type": "conv1d",
                "out_channels": 5,
                "kernel_size": 4,
                "stride": 2,
                "padding": 1,
                "dilation": 1,
                "groups": 1,
                "activation": "gelu",
            }
        ],
    ),
    "maxpool2d": ([2, 9, 8], [{"type": "maxpool2d", "kernel_size": 3, "stride": 2, "padding": 1}]),
    "avgpool2d": ([2, 9, 8], [{"type": "avgpool2d", "kernel_size": [2, 3]}]),
    "adaptive_avgpool2d": ([4, 7, 5], [{"type": "adaptive_avgpool2d", "output_size": [2, 3]}]),
    "batchnorm1d-flat": ([6], [{"type": "batchnorm1d", "activation": "relu"}]),
    "batchnorm1d-sequence": ([6, 5], [{"type": "batchnorm1d"}]),
    "batchnorm2d": ([3, 4, 4], [{"type": "batchnorm2d", "activation": "tanh"}]),
    "layernorm": ([3, 4, 5], [{"type": "layernorm", "activation": "sigmoid"}]),
    "flatten-linear-dropout": (
        [2, 3, 4],
        [{"type": "flatten"}, {"type": "dropout", "p": 0.1}, {"type": "linear", "out_features": 7}],
    ),
    "residual-identity": (
        [8],
        [
            {
                "type": "residual",
                "activation": "relu",
                "layers": [
                    {"type": "linear", "out_features": 8, "activation": "relu"},
                    {"type": "linear", "out_features": 8},
                ],
            }
        ],
    ),
    "residual-flat-projection": (
        [8],
        [{"type": "residual", "layers": [{"type": "linear", "out_features": 5}]}],
    ),
    "residual-map-projection": (
        [3, 9, 9],
        [
            {
                "type": "residual",
                "activation": "relu",
                "layers": [
                    {
                        "type": "conv2d",
                        "out_channels": 6,
                        "kernel_size": 3,
                        "stride": 2,
                        "padding": 1,
                    },
                    {"type": "batchnorm2d"},
                ],
            }
        ],
    ),
    "residual-nested": (
        [4, 6],
        [
            {
                "type": "residual",
                "layers": [
                    {
                        "type": "residual",
                        "layers": [
                            {"type": "conv1d", "out_channels": 4, "kernel_size": 3, "padding": 1}
                        ],
                    },
                    {"type": "conv1d", "out_channels": 2, "kernel_size": 1},
                ],
            }
        ],
    ),
}


def assert_agree(layers: list[Layer], input_shape: list[int]) -> None:
    summary = summarize(layers, input_shape, None)
    net = build_net(layers, input_shape).eval()

    out = net(torch.randn(BATCH, *input_shape))

    assert tuple(out.shape) == (BATCH, *summary.output_shape)
    assert [name for name, _ in net.named_parameters()] == list(summary.param_names)
    assert sum(p.numel() for p in net.parameters()) == summary.params
    state = {name: tuple(tensor.shape) for name, tensor in net.state_dict().items()}
    assert state == summary.tensors
    for module, layer in zip(net, summary.layers, strict=True):
        assert sum(p.numel() for p in module.parameters()) == layer.params


@pytest.mark.parametrize("case", sorted(CASES))
def test_torch_net_matches_shape_inference_for_every_layer_type(case: str) -> None:
    input_shape, layers = CASES[case]

    assert_agree(LAYERS.validate_python(layers), input_shape)


def test_every_layer_type_has_a_case() -> None:
    covered = {layer["type"] for _, layers in CASES.values() for layer in layers}

    assert covered == set(LAYER_TYPES)


@pytest.mark.parametrize("preset", ["mlp", "cnn", "resnet"])
@pytest.mark.parametrize(("width", "depth"), [(None, None), (8, 1), (4, 3)])
@pytest.mark.parametrize("input_shape", [[1, 28, 28], [3, 32, 32]])
def test_presets_expand_to_nets_torch_builds_exactly(
    preset: str, width: int | None, depth: int | None, input_shape: list[int]
) -> None:
    model = presets.expand(
        ModelSpec(preset=preset, width=width, depth=depth),  # type: ignore[arg-type]
        input_shape,
        10,
    )

    assert model.layers is not None and model.preset == preset
    summary = summarize(model.layers, input_shape, 10)
    assert summary.output_shape == (10,)
    assert_agree(model.layers, input_shape)


def test_resnet_depth_gives_resnet_8_and_20() -> None:
    def weighted_layers(depth: int) -> int:
        model = presets.expand(ModelSpec(preset="resnet", depth=depth), [3, 32, 32], 10)
        assert model.layers is not None
        convs = sum(
            1
            for layer in model.layers
            for inner in getattr(layer, "layers", [layer])
            if inner.type == "conv2d"
        )
        return convs + 1  # and the linear head

    assert weighted_layers(1) == 8
    assert weighted_layers(3) == 20


def test_residual_parameters_are_named_after_the_block() -> None:
    layers = LAYERS.validate_python(CASES["residual-map-projection"][1])

    names = summarize(layers, [3, 9, 9], None).param_names

    assert names == (
        "0.layers.0.weight",
        "0.layers.0.bias",
        "0.layers.1.weight",
        "0.layers.1.bias",
        "0.projection.weight",
    )


@pytest.mark.parametrize(
    ("input_shape", "layer", "field", "words"),
    [
        (
            [784],
            {"type": "conv2d", "out_channels": 4, "kernel_size": 3},
            "model.layers[0]",
            "(channels, height, width)",
        ),
        (
            [1, 4, 4],
            {"type": "conv2d", "out_channels": 4, "kernel_size": 5},
            "model.layers[0].kernel_size",
            "larger",
        ),
        (
            [1, 3, 3],
            {"type": "maxpool2d", "kernel_size": 4},
            "model.layers[0].kernel_size",
            "larger",
        ),
        (
            [1, 8, 8],
            {"type": "maxpool2d", "kernel_size": 2, "padding": 2},
            "model.layers[0].padding",
            "half",
        ),
        (
            [3, 8, 8],
            {"type": "conv2d", "out_channels": 4, "kernel_size": 1, "groups": 2},
            "model.layers[0].groups",
            "divide",
        ),
        (
            [1, 8, 8],
            {"type": "conv2d", "out_channels": 4, "kernel_size": 3, "stride": 2, "padding": "same"},
            "model.layers[0].padding",
            "stride 1",
        ),
        ([8], {"type": "batchnorm2d"}, "model.layers[0]", "(channels, height, width)"),
        ([2, 3, 4, 5][:3], {"type": "batchnorm1d"}, "model.layers[0]", "(features,)"),
        (
            [8],
            {
                "type": "residual",
                "layers": [
                    {"type": "linear", "out_features": 4},
                    {"type": "linear", "out_features": 0},
                ],
            },
            None,
            None,
        ),
        (
            [2, 8, 8],
            {"type": "residual", "layers": [{"type": "flatten"}]},
            "model.layers[0].layers",
            "projection",
        ),
        (
            [8],
            {
                "type": "residual",
                "layers": [{"type": "conv1d", "out_channels": 2, "kernel_size": 1}],
            },
            "model.layers[0].layers[0]",
            "(channels, length)",
        ),
    ],
)
def test_layers_that_cannot_take_their_input_are_rejected_naming_the_field(
    input_shape: list[int], layer: dict[str, Any], field: str | None, words: str | None
) -> None:
    if field is None:  # not even a valid layer: pydantic rejects it before shape inference
        with pytest.raises(ValueError, match="out_features"):
            LAYERS.validate_python([layer])
        return
    layers = LAYERS.validate_python([layer])

    with pytest.raises(SpecInvalid) as raised:
        summarize(layers, input_shape, None)

    assert [d.field for d in raised.value.details] == [field]
    assert words is not None and words in raised.value.details[0].message
