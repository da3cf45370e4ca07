"""Shape inference for the layer language: output shape, parameters and FLOPs per layer.

Pure Python so the API can reject a net that cannot train before anything is queued,
and show what a net costs before it runs. The trainer builds the real torch modules from
the same layers; tests check the two agree on shapes, parameter counts and names.

FLOPs are forward FLOPs per sample: a multiply-add counts 2, a bias add or an activation
counts 1 per output element.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from app.errors import ErrorDetail, SpecInvalid
from app.spec.schemas import DropoutLayer, FlattenLayer, Layer, LinearLayer

Shape = tuple[int, ...]


@dataclass(frozen=True)
class LayerSummary:
    index: int
    type: str
    output_shape: Shape
    params: int
    flops: int
    param_names: tuple[str, ...]


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


def _numel(shape: Shape) -> int:
    count = 1
    for d in shape:
        count *= d
    return count


def _layer(index: int, layer: Layer, shape: Shape, path: str) -> LayerSummary:
    match layer:
        case FlattenLayer():
            return LayerSummary(index, "flatten", (_numel(shape),), 0, 0, ())
        case DropoutLayer():
            return LayerSummary(index, "dropout", shape, 0, 0, ())
        case LinearLayer(out_features=out, bias=bias, activation=activation):
            if len(shape) != 1:
                raise SpecInvalid.at(
                    path,
                    f"linear needs a flat input but gets shape {list(shape)}; "
                    "put a flatten layer before it",
                )
            (inputs,) = shape
            params = inputs * out + (out if bias else 0)
            flops = 2 * inputs * out + (out if bias else 0) + (0 if activation == "none" else out)
            names = (f"{index}.weight", f"{index}.bias") if bias else (f"{index}.weight",)
            return LayerSummary(index, "linear", (out,), params, flops, names)
    raise AssertionError(f"unhandled layer {layer!r}")  # the discriminated union is exhaustive


def summarize(
    layers: Sequence[Layer], input_shape: Sequence[int], classes: int | None
) -> NetSummary:
    """Infer every layer's output; with `classes`, the net must end in exactly that many outputs."""
    shape: Shape = tuple(input_shape)
    summaries: list[LayerSummary] = []
    for index, layer in enumerate(layers):
        summary = _layer(index, layer, shape, f"model.layers[{index}]")
        summaries.append(summary)
        shape = summary.output_shape
    if classes is not None and shape != (classes,):
        last = len(layers) - 1
        field = f"model.layers[{last}]"
        if isinstance(layers[last], LinearLayer):
            field += ".out_features"
        message = f"the net ends in shape {list(shape)} but the dataset has {classes} classes"
        raise SpecInvalid(f"{field}: {message}", [ErrorDetail(field, message)])
    return NetSummary(tuple(input_shape), tuple(summaries))
