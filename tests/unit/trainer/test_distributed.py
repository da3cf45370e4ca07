"""The ranks' shares of the data (the DistributedSampler contract), without a process group."""

import torch

from worker.trainer.data import Split
from worker.trainer.distributed import World

CPU = torch.device("cpu")


def split(samples: int) -> Split:
    return Split(torch.arange(samples).float().reshape(samples, 1), torch.arange(samples))


def epoch_of(world: World, data: Split, batch_size: int, epoch: int, seed: int = 0) -> list[int]:
    unused = torch.Generator()  # DDP shuffles by seed and epoch, not by a running generator
    return [int(i) for _, y in world.batches(data, batch_size, unused, seed, epoch) for i in y]


def test_ranks_share_every_sample_once_per_epoch_in_equal_shards() -> None:
    data = split(103)

    shards = [epoch_of(World(CPU, rank, 4), data, 8, epoch=1) for rank in range(4)]

    assert [len(s) for s in shards] == [26] * 4  # padded to equal shards, like DistributedSampler
    everything = [i for s in shards for i in s]
    assert set(everything) == set(range(103))
    assert len(everything) - len(set(everything)) == 1  # 104 slots, one sample repeated


def test_shards_reshuffle_by_epoch_and_repeat_for_the_same_seed() -> None:
    data, world = split(64), World(CPU, 1, 2)

    first, second = epoch_of(world, data, 8, epoch=1), epoch_of(world, data, 8, epoch=2)

    assert first != second
    assert epoch_of(world, data, 8, epoch=1) == first
    assert epoch_of(world, data, 8, epoch=1, seed=1) != first


def test_each_rank_takes_its_local_batch() -> None:
    world = World(CPU, 0, 2)

    sizes = [len(y) for _, y in world.batches(split(40), 8, torch.Generator(), 0, 1)]

    assert sizes == [8, 8, 4]


def test_validation_parts_cover_every_sample_once() -> None:
    data = split(11)

    parts = [World(CPU, rank, 3).part(data) for rank in range(3)]

    assert sorted(int(i) for p in parts for i in p.y) == list(range(11))


def test_a_world_of_one_is_a_plain_job() -> None:
    world, data = World(CPU), split(10)

    assert world.leader and world.part(data) is data
    net = torch.nn.Linear(1, 1)
    assert world.wrap(net) is net
    assert world.step_metric_due(3, True) and not world.step_metric_due(3, False)
