"""build_net against shape inference: the torch net and the summary agree layer by layer."""

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor

from app.spec.layers import MAX_RESIDUAL_DEPTH, Layer
from app.spec.schemas import ModelSpec
from app.spec.shapes import summarize
from worker.trainer.nets import build_net

ACTIVATIONS = ["relu", "tanh", "sigmoid", "gelu", "none"]
EXPECTED_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": F.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "gelu": F.gelu,
    "none": lambda t: t,
}
BATCH = 5


@dataclass(frozen=True)
class Stack:
    layers: list[Layer]
    input_shape: list[int]
    classes: int


def linear(width: int, activation: str = "none", bias: bool = True) -> dict[str, Any]:
    return {"type": "linear", "out_features": width, "activation": activation, "bias": bias}


def parse(specs: list[dict[str, Any]]) -> list[Layer]:
    return ModelSpec.model_validate({"layers": specs}).layers


@st.composite
def stacks(draw: st.DrawFn) -> Stack:
    """Random flatten/linear/dropout stacks that end in a `classes`-wide linear."""
    input_shape = draw(st.lists(st.integers(1, 6), min_size=1, max_size=3))
    classes = draw(st.integers(1, 8))
    flat = len(input_shape) == 1
    specs: list[dict[str, Any]] = []

    def add_linear(width: int) -> None:
        nonlocal flat
        if not flat:  # shape inference rejects a linear on a non-flat input
            specs.append({"type": "flatten"})
            flat = True
        specs.append(linear(width, draw(st.sampled_from(ACTIVATIONS)), draw(st.booleans())))

    for kind in draw(st.lists(st.sampled_from(["flatten", "linear", "dropout"]), max_size=6)):
        if kind == "flatten":
            specs.append({"type": "flatten"})
            flat = True
        elif kind == "dropout":
            specs.append({"type": "dropout", "p": draw(st.floats(0.0, 0.9))})
        else:
            add_linear(draw(st.integers(1, 32)))
    add_linear(classes)
    return Stack(parse(specs), input_shape, classes)


@settings(max_examples=60, deadline=None)
@given(stack=stacks())
def test_forward_output_shape_matches_summary_at_every_layer(stack: Stack) -> None:
    summary = summarize(stack.layers, stack.input_shape, stack.classes)
    net = build_net(stack.layers, stack.input_shape).eval()
    x = torch.randn(BATCH, *stack.input_shape)

    assert len(net) == len(summary.layers)
    with torch.no_grad():
        for module, layer in zip(net, summary.layers, strict=True):
            x = module(x)
            assert tuple(x.shape) == (BATCH, *layer.output_shape)
    assert tuple(x.shape) == (BATCH, *summary.output_shape) == (BATCH, stack.classes)


@settings(max_examples=60, deadline=None)
@given(stack=stacks())
def test_parameter_names_and_counts_match_summary(stack: Stack) -> None:
    summary = summarize(stack.layers, stack.input_shape, stack.classes)
    net = build_net(stack.layers, stack.input_shape)

    summary_names = [name for layer in summary.layers for name in layer.param_names]
    assert list(dict(net.named_parameters())) == summary_names
    for module, layer in zip(net, summary.layers, strict=True):
        assert sum(p.numel() for p in module.parameters()) == layer.params
    assert sum(p.numel() for p in net.parameters()) == summary.params


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_linear_applies_its_activation_to_the_affine_output(activation: str) -> None:
    torch.manual_seed(0)
    net = build_net(parse([linear(16, activation)]), [8])
    x = torch.randn(32, 8)
    layer = net[0]
    assert isinstance(layer, torch.nn.Linear)

    with torch.no_grad():
        affine = F.linear(x, layer.weight, layer.bias)
        out = net(x)

    assert affine.min() < 0 < affine.max()  # so every activation changes something
    torch.testing.assert_close(out, EXPECTED_ACTIVATIONS[activation](affine))
    if activation != "none":
        assert not torch.equal(out, affine)


def test_last_linear_with_relu_outputs_no_negative_values() -> None:
    torch.manual_seed(0)
    net = build_net(parse([linear(16, "relu"), linear(4, "relu")]), [8])

    with torch.no_grad():
        out = net(torch.randn(64, 8))

    assert out.min() >= 0
    assert (out == 0).any()


def test_linear_without_bias_has_no_bias_parameter() -> None:
    net = build_net(parse([{"type": "flatten"}, linear(3, bias=False)]), [2, 2])

    assert list(dict(net.named_parameters())) == ["1.weight"]
    assert net[1].bias is None


def test_dropout_uses_its_probability_and_is_identity_in_eval() -> None:
    net = build_net(parse([{"type": "dropout", "p": 0.25}, linear(2)]), [4])
    x = torch.randn(3, 4)

    assert isinstance(net[0], torch.nn.Dropout)
    assert net[0].p == 0.25
    torch.testing.assert_close(net[0].eval()(x), x)


def _stack_depth() -> int:
    depth, frame = 0, sys._getframe()
    while frame.f_back is not None:
        depth, frame = depth + 1, frame.f_back
    return depth


def test_a_net_nested_to_the_residual_limit_trains_with_half_the_stack_to_spare() -> None:
    # The API refuses deeper nets; the trainer (a deeper stack: loop, compile, DDP) must
    # build, train and save the deepest one it accepts with room to spare.
    layer: dict[str, Any] = {"type": "linear", "out_features": 8, "activation": "relu"}
    for _ in range(MAX_RESIDUAL_DEPTH):
        layer = {"type": "residual", "layers": [layer]}
    spec = ModelSpec.model_validate({"layers": [layer, {"type": "linear", "out_features": 3}]})
    assert spec.layers is not None
    net = build_net(spec.layers, [8])
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(_stack_depth() + limit // 2)
    try:
        net(torch.randn(4, 8)).sum().backward()
        names = list(net.state_dict())
        trained = [name for name, _ in net.named_parameters()]
    finally:
        sys.setrecursionlimit(limit)
    assert trained == list(summarize(spec.layers, [8], 3).param_names)
    assert len(names) == len(trained)
