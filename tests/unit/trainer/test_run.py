"""Whose fault a trainer's exception is: the job's own fail it at once, the machine's
send it back to the queue."""

import pytest
import torch

from app.jobs.protocol import Fault
from worker.trainer.run import fault_of
from worker.trainer.stopping import Diverged


@pytest.mark.parametrize(
    ("error", "fault"),
    [
        (Diverged("train_loss became nan in epoch 2"), Fault.DIVERGED),
        (torch.OutOfMemoryError("CUDA out of memory"), Fault.OUT_OF_MEMORY),
        (MemoryError(), Fault.OUT_OF_MEMORY),
        (
            RuntimeError("mat1 and mat2 shapes cannot be multiplied (4x3 and 5x2)"),
            Fault.SHAPE_ERROR,
        ),
        (OSError(28, "No space left on device"), Fault.INFRASTRUCTURE),
        (ValueError("anything else the training code raises"), Fault.JOB_ERROR),
    ],
)
def test_a_trainer_exception_is_classified_by_whose_fault_it_is(
    error: Exception, fault: str
) -> None:
    assert fault_of(error) == fault


def test_a_real_shape_mismatch_in_torch_is_a_shape_error() -> None:
    with pytest.raises(RuntimeError) as raised:
        torch.nn.Linear(3, 2)(torch.zeros(4, 5))
    assert fault_of(raised.value) == Fault.SHAPE_ERROR


def test_a_real_failed_cpu_allocation_in_torch_is_out_of_memory() -> None:
    # A petabyte: the allocator refuses at once, without touching the machine's memory.
    with pytest.raises(RuntimeError) as raised:
        torch.empty(1 << 50, dtype=torch.uint8)
    assert "DefaultCPUAllocator" in str(raised.value)
    assert fault_of(raised.value) == Fault.OUT_OF_MEMORY
