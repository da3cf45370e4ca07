from fastapi import APIRouter

from app.datasets import service as datasets
from app.deps import SessionDep
from app.errors import ErrorDetail, SpecInvalid
from app.models.schemas import LayerOut, SummaryOut, SummaryRequest
from app.spec import summarize

router = APIRouter(prefix="/v1/models", tags=["models"])


@router.post("/summary", response_model=SummaryOut)
def summarize_model(request: SummaryRequest, session: SessionDep) -> SummaryOut:
    """Output shape, parameters and FLOPs per sample of every layer, before training."""
    input_shape, classes = request.input_shape, request.classes
    if request.dataset is not None:
        dataset = datasets.find(session, request.dataset)
        if dataset is None:
            message = f"no dataset {request.dataset!r}"
            raise SpecInvalid(f"dataset: {message}", [ErrorDetail("dataset", message)])
        input_shape, classes = dataset.input_shape, dataset.classes
    assert input_shape is not None  # the request's validator guarantees one source
    net = summarize(request.model.layers, input_shape, classes)
    layers = [
        LayerOut(
            index=layer.index,
            name=str(layer.index),
            type=layer.type,
            output_shape=list(layer.output_shape),
            params=layer.params,
            flops=layer.flops,
        )
        for layer in net.layers
    ]
    return SummaryOut(
        input_shape=list(net.input_shape),
        layers=layers,
        params=net.params,
        flops_per_sample=net.flops,
    )
