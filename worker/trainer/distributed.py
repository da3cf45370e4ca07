"""Data-parallel training: the ranks of one job, and what they share.

A DDP job's trainer process becomes its launcher: it opens the rendezvous (a TCPStore on
a port the kernel picks, so two jobs on one host never collide), forks its ranks with
torch.multiprocessing.start_processes and watches them. Forking from the trainer, which
the worker's fork server started with torch imported, keeps the start-up fast; the
launcher touches neither CUDA nor a thread pool before it forks. The ranks stay in the
trainer's process group, so cancelling the job kills every one of them.

Every rank holds the whole dataset and trains on its shard (the DistributedSampler
contract); losses and validation sums are all-reduced so all ranks see the same metrics
and take the same decisions (stop at the target, plateau schedules); only rank 0 sends
events and writes checkpoints.
"""

import math
import multiprocessing
import os
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.distributed import TCPStore  # type: ignore[attr-defined]  # torch omits it from __all__
from torch.multiprocessing.spawn import (
    ProcessContext,
    ProcessExitedException,
    ProcessRaisedException,
    start_processes,
)
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset, DistributedSampler

from app.jobs.protocol import GangSeat, TrainerPayload
from app.spec import JobSpec
from worker.trainer.data import Split, batches

# The longest a rank waits for its peers in a collective before it gives up and fails the
# job: well above the slowest thing one rank does alone (rank 0 writing a checkpoint).
COLLECTIVE_TIMEOUT_S = 60.0
# A DDP job checks whether a step metric is due every this many steps, all ranks together
# (a one-number all-reduce), because every rank must join the metric's all-reduce.
STEP_METRIC_CHECK_EVERY = 16
RENDEZVOUS_HOST = "127.0.0.1"
LAUNCHED = "taas/launched"


@dataclass(frozen=True)
class World:
    """This process's place among the job's ranks; one rank of one is a plain job."""

    device: torch.device
    rank: int = 0
    size: int = 1

    @property
    def leader(self) -> bool:
        return self.rank == 0

    def wrap(self, net: nn.Module) -> nn.Module:
        """The net that trains: DDP averages its gradients across ranks in backward."""
        if self.size == 1:
            return net
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(net, device_ids=device_ids)

    def shard_size(self, samples: int) -> int:
        return math.ceil(samples / self.size)

    def batches(
        self, split: Split, batch_size: int, generator: torch.Generator, seed: int, epoch: int
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """This rank's batches of one epoch: all of them for a plain job; for DDP, its
        shard by torch's DistributedSampler (every sample once per epoch, padded to equal
        shards, reshuffled each epoch from the job's seed)."""
        if self.size == 1:
            yield from batches(split, batch_size, generator)
            return
        sampler: DistributedSampler[int] = DistributedSampler(
            cast(Dataset[int], range(len(split))),
            num_replicas=self.size,
            rank=self.rank,
            shuffle=True,
            seed=seed,
        )
        sampler.set_epoch(epoch)
        shard = torch.tensor(list(sampler), device=split.x.device)
        for start in range(0, len(shard), batch_size):
            index = shard[start : start + batch_size]
            yield split.x[index], split.y[index]

    def part(self, split: Split) -> Split:
        """This rank's share of the validation data (every sample on exactly one rank)."""
        if self.size == 1:
            return split
        return Split(split.x[self.rank :: self.size], split.y[self.rank :: self.size])

    def sum(self, values: Tensor) -> Tensor:
        """`values` summed over all ranks."""
        if self.size > 1:
            dist.all_reduce(values)
        return values

    def mean(self, values: Tensor) -> Tensor:
        return self.sum(values) / self.size if self.size > 1 else values

    def step_metric_due(self, steps: int, due_here: bool) -> bool:
        """Whether to report a step metric now: rank 0's clock decides, for every rank."""
        if self.size == 1:
            return due_here
        if steps % STEP_METRIC_CHECK_EVERY:
            return False
        flag = torch.tensor([1.0 if due_here and self.leader else 0.0], device=self.device)
        return bool(self.sum(flag).item() > 0)


Emit = Callable[[str, dict[str, Any]], None]
# One rank's training: (payload, emit, world); raises on the job's failure.
Fit = Callable[[TrainerPayload, Emit, World], None]


def ddp_device(spec: JobSpec) -> tuple[str, str]:
    """(device type, backend) for a DDP job on this worker; a clear error when it cannot run.
    device_count() asks NVML, so the launcher does not initialise CUDA before it forks."""
    gpus = torch.cuda.device_count()
    requested = spec.resources.device
    device = "cuda" if requested == "cuda" or (requested == "auto" and gpus) else "cpu"
    processes = spec.distributed.processes  # on this worker
    if device == "cuda" and processes > gpus:
        raise RuntimeError(
            f"the job asks for {processes} processes on cuda: this worker has {gpus} GPUs"
        )
    backend = spec.distributed.backend
    if backend == "auto":
        backend = "nccl" if device == "cuda" else "gloo"
    if backend == "nccl" and device != "cuda":
        raise RuntimeError("the nccl backend needs GPUs; this worker has none")
    return device, backend


def launch(payload: TrainerPayload, emit: Emit, fit: Fit) -> None:
    """Run this worker's ranks of the job to their end; raise with the first failing
    rank's error. A multi-worker job's payload names this worker's `gang` node and node
    0's rendezvous address; node 0 hosts the rendezvous, on one worker on a free port."""
    spec = payload.spec
    local = spec.distributed.processes
    size = spec.distributed.world_size
    gang = payload.gang or GangSeat(node=0, host=RENDEZVOUS_HOST, port=0)
    node = gang.node
    device, backend = ddp_device(spec)
    timeout = timedelta(seconds=COLLECTIVE_TIMEOUT_S)
    store = (
        TCPStore(
            gang.host,
            gang.port,
            size,
            is_master=True,
            wait_for_workers=False,
            timeout=timeout,
        )
        if node == 0
        else None
    )
    host, port = gang.host, store.port if store is not None else gang.port
    cores = len(os.sched_getaffinity(0))
    threads = max(1, cores // local) if device == "cpu" else 1
    emit(
        "log",
        {
            "level": "info",
            "message": f"data-parallel on {local} {device} processes ({backend}), "
            f"{threads} threads each"
            + (f", node {node} of {spec.distributed.nodes}" if payload.gang else ""),
            "world_size": size,
        },
    )
    errors: multiprocessing.SimpleQueue[str] = multiprocessing.get_context("fork").SimpleQueue()
    ranks: ProcessContext | None = start_processes(  # type: ignore[no-untyped-call]
        _rank,
        args=(node * local, size, host, port, device, backend, threads, payload, emit, fit, errors),
        nprocs=local,
        join=False,
        start_method="fork",
    )
    assert ranks is not None
    emit(
        "log",
        {"level": "info", "message": "ranks started", "pids": [p.pid for p in ranks.processes]},
    )
    if store is not None:
        # Only now may rank 0 send: two processes writing the events pipe at once could mix.
        store.set(LAUNCHED, "1")
    try:
        while not ranks.join():
            pass
    except (ProcessRaisedException, ProcessExitedException) as failure:
        raise RankFailed(cause(ranks, errors, failure)) from None


class RankFailed(Exception):
    """A rank of a DDP job failed: the message names the rank and its error."""


def cause(
    ranks: ProcessContext,
    errors: "multiprocessing.SimpleQueue[str]",
    failure: ProcessRaisedException | ProcessExitedException,
) -> str:
    """Why the ranks ended. Once one fails, its peers fail too (a closed connection in a
    collective, then the SIGTERM the launcher sends), so: a rank killed by another signal
    (the OOM killer, a kill -9) is the cause; else the first error a rank reported."""
    for rank, process in enumerate(ranks.processes):
        code = process.exitcode
        if code is not None and code < 0 and -code != signal.SIGTERM:
            return f"rank {rank} was killed by {signal.Signals(-code).name}"
    if not errors.empty():
        return errors.get()
    if isinstance(failure, ProcessExitedException) and failure.signal_name:
        return f"rank {failure.error_index} was killed by {failure.signal_name}"
    if isinstance(failure, ProcessExitedException):
        return f"rank {failure.error_index} exited with code {failure.exit_code}"
    return f"rank {failure.error_index} failed: {str(failure).strip().splitlines()[-1]}"


def _rank(
    local_rank: int,
    first_rank: int,
    size: int,
    host: str,
    port: int,
    device_type: str,
    backend: str,
    threads: int,
    payload: TrainerPayload,
    emit: Emit,
    fit: Fit,
    errors: "multiprocessing.SimpleQueue[str]",
) -> None:
    """One rank: join the group, train, leave; its error goes to the launcher first."""
    rank = first_rank + local_rank
    torch.set_num_threads(threads)
    device = torch.device(device_type, local_rank) if device_type == "cuda" else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    timeout = timedelta(seconds=COLLECTIVE_TIMEOUT_S)
    try:
        store = TCPStore(host, port, size, is_master=False, timeout=timeout)
        store.wait([LAUNCHED])
        dist.init_process_group(backend, store=store, rank=rank, world_size=size, timeout=timeout)
        fit(payload, emit if rank == 0 else _silent, World(device, rank, size))
        dist.destroy_process_group()
    except Exception as error:
        errors.put(f"rank {rank}: {type(error).__name__}: {error}")
        raise


def _silent(type_: str, payload: dict[str, Any]) -> None:
    """Ranks other than 0 send no events: the stream shows one set of metrics."""
