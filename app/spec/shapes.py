"""Shape inference for the layer language: output shape, parameters and FLOPs per layer.

Pure Python so the API can reject a net that cannot train before anything is queued,
and show what a net costs before it runs. The trainer builds the real torch modules from
the same layers; tests check the two agree on shapes, parameter counts and names.

FLOPs are forward FLOPs per sample: a multiply-add counts 2; a bias add, an activation,
a residual sum or a pooling comparison/add counts 1 per element involved; a norm layer
counts 4 per element (subtract the mean, divide by the deviation, scale, shift).
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

from app.errors import ErrorDetail, SpecInvalid
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
    pair,
)

Shape = tuple[int, ...]
NORM_FLOPS = 4


Tensors = tuple[tuple[str, Shape], ...]


@dataclass(frozen=True)
class LayerSummary:
    name: str
    type: str
    output_shape: Shape
    flops: int
    param_shapes: Tensors = ()
    # Running statistics: in the state dict and in checkpoints, but not trained.
    buffer_shapes: Tensors = ()
    # Values of the outputs inside the layer (a residual block's body and projection).
    inner_values: int = 0

    @property
    def params(self) -> int:
        return sum(math.prod(shape) for _, shape in self.param_shapes)

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.param_shapes)

    @property
    def output_values(self) -> int:
        """Values of every output the layer computes per sample, its own and its body's."""
        return math.prod(self.output_shape) + self.inner_values


@dataclass(frozen=True)
class NetSummary:
    input_shape: Shape
    layers: tuple[LayerSummary, ...]

    @property
    def params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def flops(self) -> int:
        return sum(layer.flops for layer in self.layers)

    @property
    def output_shape(self) -> Shape:
        return self.layers[-1].output_shape if self.layers else self.input_shape

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(name for layer in self.layers for name in layer.param_names)

    @property
    def tensors(self) -> dict[str, Shape]:
        """Every tensor of the net's state dict (parameters and buffers) and its shape."""
        return {
            name: shape
            for layer in self.layers
            for name, shape in (*layer.param_shapes, *layer.buffer_shapes)
        }


def _weights(name: str, weight: Shape, bias: bool) -> Tensors:
    """A weight and, optionally, a bias as long as the weight's first dimension."""
    if bias:
        return ((f"{name}.weight", weight), (f"{name}.bias", (weight[0],)))
    return ((f"{name}.weight", weight),)


def _wrong_input(path: str, layer: str, wants: str, shape: Shape) -> SpecInvalid:
    return SpecInvalid.at(path, f"{layer} needs input shaped {wants} but gets {list(shape)}")


def sizes(value: int | tuple[int, int], dims: int) -> tuple[int, ...]:
    """A kernel, stride, padding or dilation as one int per spatial dimension."""
    return pair(value) if dims == 2 else (value,) if isinstance(value, int) else value


def projection_strides(shape: Shape, out: Shape) -> tuple[int, ...] | None:
    """Strides of a 1x1 convolution taking `shape` to `out`, or None if there are none."""
    if len(shape) != len(out) or len(shape) not in (2, 3):
        return None
    strides = tuple(-(-n // m) for n, m in zip(shape[1:], out[1:], strict=True))
    fits = all((n - 1) // s + 1 == m for n, m, s in zip(shape[1:], out[1:], strides, strict=True))
    return strides if fits else None


def _window(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _activation_flops(activation: str, elements: int) -> int:
    return 0 if activation == "none" else elements


def _conv(layer: Conv1dLayer | Conv2dLayer, shape: Shape, name: str, path: str) -> LayerSummary:
    dims = 1 if isinstance(layer, Conv1dLayer) else 2
    if len(shape) != dims + 1:
        wants = "(channels, length)" if dims == 1 else "(channels, height, width)"
        raise _wrong_input(path, layer.type, wants, shape)
    channels, spatial = shape[0], shape[1:]
    if channels % layer.groups or layer.out_channels % layer.groups:
        raise SpecInvalid.at(
            f"{path}.groups",
            f"groups {layer.groups} must divide the input channels ({channels}) "
            f"and out_channels ({layer.out_channels})",
        )
    kernel, stride = sizes(layer.kernel_size, dims), sizes(layer.stride, dims)
    dilation = sizes(layer.dilation, dims)
    if layer.padding == "same":
        if any(s != 1 for s in stride):
            raise SpecInvalid.at(f"{path}.padding", 'padding "same" needs stride 1')
        out_spatial = tuple(spatial)
    else:
        padding = sizes(layer.padding, dims)
        out_spatial = tuple(
            _window(n, k, s, p, d)
            for n, k, s, p, d in zip(spatial, kernel, stride, padding, dilation, strict=True)
        )
        if any(n < 1 for n in out_spatial):
            raise SpecInvalid.at(
                f"{path}.kernel_size",
                f"the kernel ({list(kernel)}, dilation {list(dilation)}) is larger than the "
                f"padded input {list(spatial)}",
            )
    out = (layer.out_channels, *out_spatial)
    elements = math.prod(out)
    per_output = 2 * (channels // layer.groups) * math.prod(kernel)
    flops = per_output * elements + (elements if layer.bias else 0)
    flops += _activation_flops(layer.activation, elements)
    weight = (layer.out_channels, channels // layer.groups, *kernel)
    return LayerSummary(name, layer.type, out, flops, _weights(name, weight, layer.bias))


def _pool(
    layer: MaxPool2dLayer | AvgPool2dLayer, shape: Shape, name: str, path: str
) -> LayerSummary:
    if len(shape) != 3:
        raise _wrong_input(path, layer.type, "(channels, height, width)", shape)
    kernel = pair(layer.kernel_size)
    stride = pair(layer.stride) if layer.stride is not None else kernel
    padding = pair(layer.padding)
    if any(2 * p > k for p, k in zip(padding, kernel, strict=True)):
        raise SpecInvalid.at(f"{path}.padding", "padding must be at most half the kernel size")
    out_spatial = tuple(
        _window(n, k, s, p, 1)
        for n, k, s, p in zip(shape[1:], kernel, stride, padding, strict=True)
    )
    if any(n < 1 for n in out_spatial):
        raise SpecInvalid.at(
            f"{path}.kernel_size",
            f"the pooling window {list(kernel)} is larger than the feature map {list(shape[1:])}",
        )
    out = (shape[0], *out_spatial)
    return LayerSummary(name, layer.type, out, math.prod(out) * math.prod(kernel))


def _norm(layer: Layer, shape: Shape, name: str, path: str) -> LayerSummary:
    if isinstance(layer, BatchNorm1dLayer) and len(shape) not in (1, 2):
        raise _wrong_input(path, layer.type, "(features,) or (channels, length)", shape)
    if isinstance(layer, BatchNorm2dLayer) and len(shape) != 3:
        raise _wrong_input(path, layer.type, "(channels, height, width)", shape)
    assert isinstance(layer, BatchNorm1dLayer | BatchNorm2dLayer | LayerNormLayer)
    elements = math.prod(shape)
    flops = NORM_FLOPS * elements + _activation_flops(layer.activation, elements)
    if isinstance(layer, LayerNormLayer):
        params = ((f"{name}.weight", shape), (f"{name}.bias", shape))
        return LayerSummary(name, layer.type, shape, flops, params)
    channels = (shape[0],)
    params = ((f"{name}.weight", channels), (f"{name}.bias", channels))
    buffers = (
        (f"{name}.running_mean", channels),
        (f"{name}.running_var", channels),
        (f"{name}.num_batches_tracked", ()),
    )
    return LayerSummary(name, layer.type, shape, flops, params, buffers)


def _projection(shape: Shape, out: Shape, name: str, path: str) -> LayerSummary:
    """The 1x1 projection that carries x to the body's output shape."""
    if len(shape) == 1 and len(out) == 1:
        weights = _weights(f"{name}.projection", (out[0], shape[0]), bias=True)
        return LayerSummary(name, "projection", out, 2 * shape[0] * out[0] + out[0], weights)
    if projection_strides(shape, out) is not None:
        kernel = (1,) * (len(shape) - 1)
        weights = _weights(f"{name}.projection", (out[0], shape[0], *kernel), bias=False)
        flops = 2 * shape[0] * out[0] * math.prod(out[1:])
        return LayerSummary(name, "projection", out, flops, weights)
    raise SpecInvalid.at(
        f"{path}.layers",
        f"the block turns {list(shape)} into {list(out)}, which no 1x1 projection of the "
        "input can match; keep the rank and shrink sizes by whole strides",
    )


def _residual(layer: ResidualLayer, shape: Shape, name: str, path: str) -> LayerSummary:
    parts = _infer(layer.layers, shape, prefix=f"{name}.layers.", path=f"{path}.layers")
    out = parts[-1].output_shape
    if out != shape:
        parts.append(_projection(shape, out, name, path))
    elements = math.prod(out)
    flops = sum(p.flops for p in parts) + elements + _activation_flops(layer.activation, elements)
    params = tuple(t for p in parts for t in p.param_shapes)
    buffers = tuple(t for p in parts for t in p.buffer_shapes)
    inner = sum(p.output_values for p in parts)
    return LayerSummary(name, "residual", out, flops, params, buffers, inner)


def _layer(layer: Layer, shape: Shape, name: str, path: str) -> LayerSummary:
    match layer:
        case FlattenLayer():
            return LayerSummary(name, "flatten", (math.prod(shape),), 0)
        case DropoutLayer():
            return LayerSummary(name, "dropout", shape, 0)
        case LinearLayer(out_features=out, bias=bias, activation=activation):
            if len(shape) != 1:
                raise SpecInvalid.at(
                    path,
                    f"linear needs a flat input but gets shape {list(shape)}; "
                    "put a flatten layer before it",
                )
            (inputs,) = shape
            flops = 2 * inputs * out + (out if bias else 0) + _activation_flops(activation, out)
            weights = _weights(name, (out, inputs), bias)
            return LayerSummary(name, "linear", (out,), flops, weights)
        case Conv1dLayer() | Conv2dLayer():
            return _conv(layer, shape, name, path)
        case MaxPool2dLayer() | AvgPool2dLayer():
            return _pool(layer, shape, name, path)
        case AdaptiveAvgPool2dLayer():
            if len(shape) != 3:
                raise _wrong_input(path, layer.type, "(channels, height, width)", shape)
            pooled = (shape[0], *pair(layer.output_size))
            return LayerSummary(name, layer.type, pooled, math.prod(shape))
        case BatchNorm1dLayer() | BatchNorm2dLayer() | LayerNormLayer():
            return _norm(layer, shape, name, path)
        case ResidualLayer():
            return _residual(layer, shape, name, path)
    raise AssertionError(f"unhandled layer {layer!r}")  # the discriminated union is exhaustive


def _infer(layers: Sequence[Layer], shape: Shape, *, prefix: str, path: str) -> list[LayerSummary]:
    summaries = []
    for index, layer in enumerate(layers):
        summary = _layer(layer, shape, f"{prefix}{index}", f"{path}[{index}]")
        summaries.append(summary)
        shape = summary.output_shape
    return summaries


def summarize(
    layers: Sequence[Layer],
    input_shape: Sequence[int],
    outputs: int | None,
    *,
    outputs_are: str = "classes",
) -> NetSummary:
    """Infer every layer's output; with `outputs`, the net must end in exactly that many."""
    summaries = _infer(layers, tuple(input_shape), prefix="", path="model.layers")
    shape = summaries[-1].output_shape
    if outputs is not None and shape != (outputs,):
        last = len(layers) - 1
        field = f"model.layers[{last}]"
        if isinstance(layers[last], LinearLayer):
            field += ".out_features"
        message = f"the net ends in shape {list(shape)} but the dataset has {outputs} {outputs_are}"
        raise SpecInvalid(f"{field}: {message}", [ErrorDetail(field, message)])
    return NetSummary(tuple(input_shape), tuple(summaries))
