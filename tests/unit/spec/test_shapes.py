"""Shape inference: outputs, parameter counts, FLOPs and names per layer, and where nets fail."""

from typing import Any

import pytest

from app.errors import SpecInvalid
from app.spec.schemas import SEED_JOB_EXAMPLE, Layer, ModelSpec
from app.spec.shapes import summarize

MNIST_SHAPE = [1, 28, 28]
PIXELS = 28 * 28


def layers(*specs: dict[str, Any]) -> list[Layer]:
    return ModelSpec.model_validate({"layers": list(specs)}).layers


def seed_layers() -> list[Layer]:
    model = SEED_JOB_EXAMPLE["model"]
    assert isinstance(model, dict)
    return ModelSpec.model_validate(model).layers


def invalid(net: list[Layer], input_shape: list[int], classes: int | None) -> SpecInvalid:
    with pytest.raises(SpecInvalid) as caught:
        summarize(net, input_shape, classes)
    return caught.value


def test_seed_mlp_summary_has_expected_shapes_params_and_names() -> None:
    summary = summarize(seed_layers(), MNIST_SHAPE, 10)

    assert summary.input_shape == (1, 28, 28)
    assert summary.output_shape == (10,)
    assert [layer.output_shape for layer in summary.layers] == [(PIXELS,), (10,), (10,), (10,)]
    assert [layer.type for layer in summary.layers] == ["flatten", "linear", "linear", "linear"]
    assert [layer.name for layer in summary.layers] == ["0", "1", "2", "3"]
    assert [layer.params for layer in summary.layers] == [0, 7850, 110, 110]
    assert summary.params == 8070 == (784 * 10 + 10) + (10 * 10 + 10) + (10 * 10 + 10)
    assert [layer.param_names for layer in summary.layers] == [
        (),
        ("1.weight", "1.bias"),
        ("2.weight", "2.bias"),
        ("3.weight", "3.bias"),
    ]


def test_seed_mlp_flops_count_multiply_adds_twice_and_bias_and_activation_once() -> None:
    summary = summarize(seed_layers(), MNIST_SHAPE, 10)

    relu_hidden = 2 * PIXELS * 10 + 10 + 10
    relu_second = 2 * 10 * 10 + 10 + 10
    plain_last = 2 * 10 * 10 + 10
    assert [layer.flops for layer in summary.layers] == [0, relu_hidden, relu_second, plain_last]
    assert summary.flops == 16130


def test_linear_without_flatten_on_image_input_is_rejected_at_its_layer() -> None:
    error = invalid(layers({"type": "linear", "out_features": 10}), MNIST_SHAPE, 10)

    assert [detail.field for detail in error.details] == ["model.layers[0]"]
    assert "flatten" in error.details[0].message
    assert "[1, 28, 28]" in error.details[0].message
    assert error.status_code == 422


def test_linear_after_dropout_on_image_input_is_rejected_at_the_linear() -> None:
    net = layers(
        {"type": "dropout", "p": 0.1},
        {"type": "linear", "out_features": 10},
        {"type": "flatten"},
    )

    error = invalid(net, MNIST_SHAPE, None)

    assert [detail.field for detail in error.details] == ["model.layers[1]"]


def test_last_width_other_than_classes_is_rejected_at_its_out_features() -> None:
    net = seed_layers()[:3] + layers({"type": "linear", "out_features": 7})

    error = invalid(net, MNIST_SHAPE, 10)

    assert [detail.field for detail in error.details] == ["model.layers[3].out_features"]
    assert "[7]" in error.details[0].message
    assert "10 classes" in error.details[0].message
    assert str(error).startswith("model.layers[3].out_features: ")


def test_trailing_dropout_after_wrong_width_is_rejected_at_the_dropout() -> None:
    net = layers(
        {"type": "flatten"},
        {"type": "linear", "out_features": 16, "activation": "relu"},
        {"type": "linear", "out_features": 9},
        {"type": "dropout", "p": 0.2},
    )

    error = invalid(net, MNIST_SHAPE, 10)

    assert [detail.field for detail in error.details] == ["model.layers[3]"]


def test_net_ending_in_image_shape_is_rejected_at_its_last_layer() -> None:
    error = invalid(layers({"type": "dropout"}), MNIST_SHAPE, 10)

    assert [detail.field for detail in error.details] == ["model.layers[0]"]
    assert "[1, 28, 28]" in error.details[0].message


def test_trailing_dropout_after_right_width_is_accepted() -> None:
    net = layers({"type": "flatten"}, {"type": "linear", "out_features": 10}, {"type": "dropout"})

    summary = summarize(net, MNIST_SHAPE, 10)

    assert summary.output_shape == (10,)
    assert summary.layers[-1].params == 0
    assert summary.layers[-1].flops == 0


def test_without_classes_any_final_shape_is_accepted() -> None:
    summary = summarize(layers({"type": "dropout"}), MNIST_SHAPE, None)

    assert summary.output_shape == (1, 28, 28)
    assert summary.params == 0


def test_bias_false_drops_bias_name_params_and_flops() -> None:
    net = layers({"type": "flatten"}, {"type": "linear", "out_features": 10, "bias": False})

    summary = summarize(net, MNIST_SHAPE, 10)

    linear = summary.layers[1]
    assert linear.param_names == ("1.weight",)
    assert linear.params == PIXELS * 10
    assert linear.flops == 2 * PIXELS * 10


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "gelu"])
def test_activation_adds_one_flop_per_output_and_no_params(activation: str) -> None:
    plain = summarize(layers({"type": "linear", "out_features": 5}), [3], 5)
    activated = summarize(
        layers({"type": "linear", "out_features": 5, "activation": activation}), [3], 5
    )

    assert activated.flops == plain.flops + 5
    assert activated.params == plain.params == 3 * 5 + 5
    assert activated.layers[0].param_names == plain.layers[0].param_names


def test_flatten_of_flat_input_keeps_its_width() -> None:
    summary = summarize(layers({"type": "flatten"}, {"type": "linear", "out_features": 2}), [6], 2)

    assert [layer.output_shape for layer in summary.layers] == [(6,), (2,)]
    assert summary.params == 6 * 2 + 2


def test_param_names_follow_layer_indices_across_parameterless_layers() -> None:
    net = layers(
        {"type": "flatten"},
        {"type": "dropout"},
        {"type": "linear", "out_features": 4, "bias": False},
        {"type": "dropout"},
        {"type": "linear", "out_features": 3},
    )

    summary = summarize(net, [2, 3], 3)

    names = [name for layer in summary.layers for name in layer.param_names]
    assert names == ["2.weight", "4.weight", "4.bias"]
    assert summary.params == 6 * 4 + (4 * 3 + 3)
