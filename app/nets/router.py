from fastapi import APIRouter

from app.deps import CallerDep, SessionDep
from app.errors import SpecInvalid
from app.jobs.planning import data_shape
from app.nets.schemas import LayerOut, SummaryOut, SummaryRequest
from app.openapi import errors
from app.spec import memory, presets, summarize

# The public URL and tag stay `models`: clients and the OpenAPI document know them so.
router = APIRouter(prefix="/v1/models", tags=["models"])


@router.post("/summary", response_model=SummaryOut, responses=errors(404))
def summarize_model(request: SummaryRequest, caller: CallerDep, session: SessionDep) -> SummaryOut:
    """Output shape, parameters and FLOPs per sample of every layer, before training."""
    outputs: int | None
    if request.dataset is not None:
        data = data_shape(session, request.dataset, "dataset", tenant=caller.tenant)
        input_shape, outputs = data.input_shape, data.outputs
    else:
        assert request.input_shape is not None  # the request's validator guarantees one source
        input_shape, outputs = request.input_shape, request.classes
    if request.model.preset is not None and request.model.layers is None and outputs is None:
        raise SpecInvalid.at("classes", "a preset needs the number of classes (or outputs)")
    model = presets.expand(request.model, input_shape, outputs or 0)
    assert model.layers is not None
    net = summarize(model.layers, input_shape, outputs)
    layers = [
        LayerOut(
            index=i,
            name=layer.name,
            type=layer.type,
            output_shape=list(layer.output_shape),
            params=layer.params,
            flops=layer.flops,
        )
        for i, layer in enumerate(net.layers)
    ]
    return SummaryOut(
        input_shape=list(net.input_shape),
        layers=layers,
        params=net.params,
        flops_per_sample=net.flops,
        model=model.model_dump(mode="json", exclude_none=True),
        activation_bytes_per_sample=memory.activation_bytes_per_sample(net),
        parameter_bytes=memory.parameter_bytes(net),
        training_bytes=(
            memory.training_bytes(net, request.batch_size) if request.batch_size else None
        ),
    )
