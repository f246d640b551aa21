"""Each DDP rank's share of the training pairs and of the evaluation chunks."""

from __future__ import annotations

from collections.abc import Iterator, Sized
from typing import Any, Generic, TypeVar

import torch
from torch import Tensor
from torch.utils.data import Dataset, DistributedSampler, IterableDataset

Item = TypeVar("Item")


def rank_positions(count: int, shuffle: bool, seed: int, rank: int, world_size: int) -> Tensor:
    """``(ceil(count / world_size),)`` int64 indices of rank ``rank``: the ``count`` indices
    shuffled with ``seed`` (or in order), padded by wrapping around to a multiple of
    ``world_size``, then every ``world_size``-th from ``rank`` (``DistributedSampler``'s rule)."""
    if shuffle:
        order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    else:
        order = torch.arange(count)
    per_rank = -(-count // world_size)
    padded = order.repeat(-(-per_rank * world_size // count))
    return padded[: per_rank * world_size][rank::world_size]


def skipped_steps(resume_at: tuple[int, int] | None, epoch: int) -> int:
    """How many steps of ``epoch`` a resumed run has done already (0 for any other epoch)."""
    if resume_at is None or resume_at[0] != epoch:
        return 0
    return resume_at[1]


class RankShare(DistributedSampler[Item], Generic[Item]):
    """The part of ``count`` shuffled indices that one rank visits, in an order that depends
    only on ``(seed, epoch)`` (see :func:`rank_positions`), and that can resume part-way
    through an epoch. As a ``DistributedSampler`` Lightning leaves it in place and calls
    :meth:`set_epoch`. Subclasses yield single indices or batches of them (one step each)."""

    def __init__(self, count: int, shuffle: bool, seed: int, rank: int, world_size: int) -> None:
        super().__init__(
            range(count),  # type: ignore[arg-type]  # only its length is read
            num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed,
        )
        self.count = count
        self.per_rank = -(-count // world_size)
        self._resume_at: tuple[int, int] | None = None

    def resume(self, epoch: int, steps_done: int) -> None:
        """Sets ``epoch``, whose next pass starts after its first ``steps_done`` steps (a run
        resumed from a checkpoint saved part-way through that epoch)."""
        self.set_epoch(int(epoch))
        self._resume_at = (int(epoch), int(steps_done))

    def positions(self) -> tuple[Tensor, int]:
        """This epoch's ``(per_rank,)`` indices of this rank, and how many steps to skip (the
        resumed ones, once)."""
        mine = rank_positions(
            self.count, self.shuffle, self.seed + self.epoch, self.rank, self.num_replicas
        )
        skip, self._resume_at = skipped_steps(self._resume_at, self.epoch), None
        return mine, skip


class RankOrder(RankShare[int]):
    """Indices of a map-style dataset for one rank, in an order that depends only on
    ``(seed, epoch)``, so that a run resumed from a checkpoint visits the same items.

    Each epoch the ``count`` indices are shuffled with ``seed + epoch`` (or kept in order),
    padded by wrapping around to a multiple of ``world_size``, and rank ``r`` takes positions
    ``r, r + world_size, ...`` (see :func:`rank_positions`). Unlike a ``DataLoader``'s
    ``shuffle=True``, the order does not draw from the global RNG.

    Args:
        count: number of items.
        shuffle: shuffle each epoch (otherwise in order).
        seed: base seed of the shuffle.
        rank: this process's rank.
        world_size: number of processes.
    """

    def __init__(
        self, count: int, shuffle: bool = True, seed: int = 0, rank: int = 0, world_size: int = 1
    ) -> None:
        if count < 1:
            raise ValueError("no training items: the dataset is empty.")
        super().__init__(count, shuffle, seed, rank, world_size)

    def __iter__(self) -> Iterator[int]:
        mine, skip = self.positions()
        yield from mine[skip:].tolist()

    def __len__(self) -> int:
        return self.per_rank


class RankBatchSampler(RankShare[list[int]]):
    """Batches of indices for one rank: every rank gets the same number of batches, of the same
    sizes, from a shuffle that all ranks share.

    Each epoch the ``count`` indices are shuffled with ``seed + epoch`` (the same order on every
    rank), padded by wrapping around to a multiple of ``world_size`` (as ``DistributedSampler``
    does), and rank ``r`` takes positions ``r, r + world_size, ...``, cut into batches of
    ``batch_size``. Equal batches keep DDP's collectives in step and let negatives be gathered
    across ranks.

    Args:
        count: number of training examples.
        batch_size: examples per rank and step.
        shuffle: shuffle each epoch (otherwise corpus order).
        seed: base seed of the shuffle.
        rank: this process's rank.
        world_size: number of processes.
    """

    def __init__(
        self,
        count: int,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if count < 1:
            raise ValueError("no training examples: the relation is empty after min_count.")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        super().__init__(count, shuffle, seed, rank, world_size)
        self.batch_size = batch_size

    def __iter__(self) -> Iterator[list[int]]:
        mine, skip = self.positions()
        for start in range(skip * self.batch_size, self.per_rank, self.batch_size):
            yield mine[start : start + self.batch_size].tolist()

    def __len__(self) -> int:
        return -(-self.per_rank // self.batch_size)


class EvaluationShard(IterableDataset[Item], Generic[Item]):
    """Items ``rank, rank + world_size, ...`` of a map-style dataset, each once.

    Evaluation must not repeat items (a padded ``DistributedSampler`` would count some twice in
    the metrics), and ranks may get one item more or less. As an iterable dataset it is left
    alone by Lightning; the metrics' states are summed across ranks when computed.

    Args:
        dataset: the items (with ``__len__``).
        rank: this process's rank.
        world_size: number of processes.
    """

    def __init__(self, dataset: Dataset[Item], rank: int = 0, world_size: int = 1) -> None:
        if not isinstance(dataset, Sized):
            raise TypeError("EvaluationShard needs a dataset with __len__.")
        self.dataset = dataset
        self.indices = range(rank, len(dataset), world_size)

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[Item]:
        for index in self.indices:
            yield self.dataset[index]

    def __getitem__(self, index: int) -> Any:
        return self.dataset[self.indices[index]]
