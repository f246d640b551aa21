"""Cross-batch negatives from a FIFO queue of recent positives."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from nslightning.distributed import gather_ids
from nslightning.samplers.base import Draw, DrawRequest, NegativeSampler
from nslightning.samplers.batch_counts import count_in, log_frequency

EMPTY = -1


class MemoryBankSampler(NegativeSampler):
    """Draws negatives from a queue of the last ``size`` positives (Wu et al. 2018, MoCo, XBM).

    Each call first enqueues its positives (the oldest entries leave once the queue is full),
    then draws ``K`` entries per row uniformly with replacement from the queue, so negatives
    come from this batch and the ones before it. ``log_q`` is the log of the id's share of the
    queue, the exact probability of the draw (``log_q_kind="per_draw"``). The sampler is
    :attr:`batch_based` (ids not in the queue cannot be drawn) yet :meth:`draws_from_items`: it
    draws all ``K`` with replacement, so ``K`` is no cap. The queue holds ids, not vectors: the
    task scores them with its current model. It is a buffer: it moves with ``.to(device)`` and
    is saved in checkpoints. Enqueueing and drawing are tensor ops only (no host sync). A
    checkpoint brings its own queue, whatever ``size`` the new sampler was built with.

    With ``across_ranks`` under DDP every rank enqueues the positives of the global batch (in
    rank order), as multi-GPU MoCo does, so all ranks hold the same queue and draw from it with
    their own generators (``seed + rank``).

    Args:
        size: capacity of the queue.
        seed: base seed of the generator (rank ``r`` uses ``seed + r``).
        never_drawn: ids that are never enqueued (padding, ``<unk>``).
        across_ranks: under DDP, enqueue every rank's positives (each rank must then pass the
            same number per call). No effect in one process.

    Examples:
        >>> import torch
        >>> from nslightning.samplers import MemoryBankSampler
        >>> sampler = MemoryBankSampler(size=4, seed=0)
        >>> sampler.setup(torch.ones(10))  # the queue is the distribution: counts are unused
        >>> _ = sampler.sample(torch.tensor([1, 2]), 3)
        >>> negatives = sampler.sample(torch.tensor([3, 3, 5]), 3)
        >>> sampler.contents().tolist()  # the oldest entry (1) has left
        [2, 3, 3, 5]
        >>> negatives.ids.tolist()
        [[5, 2, 3], [2, 2, 5], [2, 3, 2]]
        >>> negatives.mask.tolist()
        [[True, True, False], [True, True, True], [True, True, True]]
        >>> [round(q, 2) for q in negatives.log_q[0].exp().tolist()]  # the id's share of the queue
        [0.25, 0.25, 0.5]
    """

    batch_based = True

    bank: Tensor
    cursor: Tensor
    filled: Tensor

    def __init__(
        self,
        size: int = 4096,
        seed: int = 0,
        never_drawn: Sequence[int] | None = None,
        across_ranks: bool = False,
    ) -> None:
        super().__init__(seed=seed)
        self.across_ranks = bool(across_ranks)
        if size < 1:
            raise ValueError(f"MemoryBankSampler size must be >= 1, got {size}.")
        self._set_never_drawn(never_drawn)
        self.register_buffer("bank", torch.full((size,), EMPTY, dtype=torch.int64))
        self.register_buffer("cursor", torch.zeros((), dtype=torch.int64))
        self.register_buffer("filled", torch.zeros((), dtype=torch.int64))

    @property
    def size(self) -> int:
        return self.bank.numel()

    def _setup(self, counts: Tensor) -> None:
        self.bank.fill_(EMPTY)
        self.cursor.zero_()
        self.filled.zero_()

    def enqueue(self, ids: Tensor) -> None:
        """Appends ``ids`` (any shape, flattened in order) to the queue, dropping the oldest
        (every rank's ids, in rank order, with ``across_ranks``)."""
        flat = ids.reshape(-1).long()
        if self.across_ranks:
            flat, _ = gather_ids(flat)
        keep = self.drawable(flat)
        order = keep.cumsum(0)  # 1-based position among the kept ids
        kept = order[-1] if flat.numel() else order.new_zeros(())
        write = keep & (order > kept - self.size)  # only the last `size` kept ids survive
        slots = (self.cursor + order - 1) % self.size
        slots = torch.where(write, slots, torch.full_like(slots, self.size))  # the rest: a spare
        extended = torch.cat([self.bank, self.bank.new_full((1,), EMPTY)])
        extended.scatter_(0, slots, flat)
        self.bank.copy_(extended[: self.size])
        self.cursor.copy_((self.cursor + kept) % self.size)
        self.filled.copy_(torch.clamp(self.filled + kept, max=self.size))

    def contents(self) -> Tensor:
        """``(filled,)`` the queue from oldest to newest (a host sync; for inspection)."""
        filled = int(self.filled)
        if filled < self.size:
            return self.bank[:filled].clone()
        return torch.roll(self.bank, -int(self.cursor))

    def observe(self, positives: Tensor) -> None:
        """Enqueues the batch (also when a mixture gives this sampler no columns)."""
        self.enqueue(positives)

    def _draw(self, request: DrawRequest) -> Draw:
        positives = request.positives
        self.enqueue(positives)
        shape = (*positives.shape, request.num_negatives)
        # float64: every slot of a large queue keeps exactly the same chance.
        u = torch.rand(shape, device=positives.device, generator=request.generator,
                       dtype=torch.float64)
        slots = (u * self.filled).long().clamp_(max=self.size - 1)
        ids = self.bank[slots]
        valid = ids != EMPTY  # only when nothing could be enqueued yet
        ids = ids.clamp_min(0)
        if ids.numel() < self.size:  # count the drawn ids only
            log_q = log_frequency(ids, self.bank, self.filled)
        else:  # count every slot once, then look the slots up
            log_q = (count_in(self.bank, self.bank)[slots].float() / self.filled.clamp_min(1)).log()
        return Draw(ids, log_q, valid)

    def log_prob(self, ids: Tensor, positives: Tensor, exclude: Tensor | None = None) -> Tensor:
        """``log(count of the id in the queue / filled)``; ``-inf`` for ids not queued."""
        return log_frequency(ids, self.bank, self.filled)

    def extra_repr(self) -> str:
        spans = "across_ranks=True, " if self.across_ranks else ""
        return f"size={self.size}, " + spans + super().extra_repr()
