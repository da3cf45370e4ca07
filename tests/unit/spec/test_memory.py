"""The training-memory estimate: every output a net computes, nested ones included."""

from app.spec.memory import (
    ACTIVATION_FACTOR,
    AUTO_BATCH_FLOOR,
    BYTES_PER_VALUE,
    activation_bytes_per_sample,
    training_bytes,
)
from app.spec.schemas import ModelSpec
from app.spec.shapes import summarize
from worker.trainer.levers import BATCH_CANDIDATES


def test_a_residual_blocks_body_and_projection_count_towards_the_activations() -> None:
    spec = ModelSpec.model_validate(
        {
            "layers": [
                {
                    "type": "residual",
                    "layers": [{"type": "linear", "out_features": 5}, {"type": "dropout"}],
                },
                {"type": "linear", "out_features": 2},
            ]
        }
    )
    assert spec.layers is not None
    net = summarize(spec.layers, [3], 2)

    # input 3; body: linear 5, dropout 5; projection 5; the block's sum 5; head 2
    values = 3 + 5 + 5 + 5 + 5 + 2
    assert activation_bytes_per_sample(net) == ACTIVATION_FACTOR * BYTES_PER_VALUE * values
    assert training_bytes(net, 10, replicas=2) - training_bytes(net, 10) == training_bytes(net, 0)


def test_auto_batches_are_estimated_at_the_probes_smallest_candidate() -> None:
    assert min(BATCH_CANDIDATES) == AUTO_BATCH_FLOOR
