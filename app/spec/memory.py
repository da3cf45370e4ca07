"""What training a net holds in memory, estimated from the shapes app/spec infers (no torch).

The estimate is for fp32 (autocast only lowers it) and counts two things:
- activations: the input and every layer's output, per sample, kept by autograd for the
  backward pass, times ACTIVATION_FACTOR for the gradients of the same size that flow back
  through them and the inputs some layers keep too (activation functions, norms). Measured
  on CPU for a small conv net with norms and a residual block, forward plus backward grew
  the process by 1.5x the outputs' bytes; 2 leaves room above that.
- parameter state: weights, gradients and up to two optimizer tensors (Adam's moments).
Framework overhead (torch itself, the dataset on the device) is not counted.
"""

import math
from typing import Final

from app.spec.shapes import NetSummary

BYTES_PER_VALUE: Final = 4  # fp32
ACTIVATION_FACTOR: Final = 2
PARAMETER_COPIES: Final = 4
# batch_size "auto" is settled by a probe on the worker, which starts from its smallest
# candidate (worker/trainer/levers.py BATCH_CANDIDATES) and backs off when memory runs out.
AUTO_BATCH_FLOOR: Final = 16


def activation_bytes_per_sample(net: NetSummary) -> int:
    """Bytes of activations and their gradients one sample holds while training."""
    values = math.prod(net.input_shape) + sum(layer.output_values for layer in net.layers)
    return ACTIVATION_FACTOR * BYTES_PER_VALUE * values


def parameter_bytes(net: NetSummary) -> int:
    """Bytes of weights, gradients and optimizer state, whatever the batch."""
    buffers = sum(math.prod(shape) for layer in net.layers for _, shape in layer.buffer_shapes)
    return PARAMETER_COPIES * BYTES_PER_VALUE * net.params + BYTES_PER_VALUE * buffers


def training_bytes(net: NetSummary, batch: int, *, replicas: int = 1) -> int:
    """Bytes a worker needs to train `batch` samples per step on `replicas` copies of the net."""
    return activation_bytes_per_sample(net) * batch + parameter_bytes(net) * replicas
