"""In-batch negatives: the other positives of the batch."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from nslightning.distributed import gather_ids
from nslightning.samplers.base import Draw, DrawRequest, NegativeSampler
from nslightning.samplers.batch_counts import count_in, log_frequency, repeated_in_row

MAX_KEYS = 1 << 22  # random keys held at once when choosing among all positions of the batch


class InBatchSampler(NegativeSampler):
    """Uses the other positives of the batch as negatives (Chen et al. 2017, SimCLR, DPR).

    Every positive of the call (all of ``positives``, flattened to ``N``) is a candidate for
    every other row. With ``K >= N - 1`` each row gets all ``N - 1`` others, in batch order;
    with a smaller ``K`` (the cap) each row gets ``K`` of them chosen uniformly without
    replacement among the candidates that are valid for it (when it has fewer, the rest of the
    row is filled with invalid ones, masked). A candidate equal to the row's own positive (a
    duplicate in the batch) or in ``never_drawn`` is never a valid negative: its ``mask`` is
    ``False``. The result has ``min(K, N - 1)`` columns.

    ``log_q`` is the probability that a valid candidate chosen at random holds the id:
    ``count(id) / (N - c)``, the id's empirical frequency among the row's candidates (``N``
    drawable positions, ``c`` copies of the row's own positive). This is the sampling
    probability that the logQ correction of Yi et al. 2019 ("Sampling-bias-corrected neural
    modeling") subtracts so that popular items are not over-penalised. It is a per-draw
    probability (``log_q_kind="per_draw"``): each column, taken alone, is a uniform choice among
    the row's candidates, so ``K q`` is the id's expected count among the row's ``K`` columns.
    The sampler is :attr:`batch_based` and does not :meth:`draws_from_items`.

    With ``across_ranks`` under DDP the candidates are the positives of the global batch: every
    rank gathers the others' positive ids (``N`` per rank, ``P = world_size * N`` in all) and
    its rows draw from all ``P`` positions. The ids are gathered, not vectors: the tables are
    replicated, so a rank scores the gathered ids with its own copy and DDP's gradient
    all-reduce sums every contribution, which gives the gradients of one process holding the
    whole batch (without moving ``P x D`` vectors). Rows keep their own generator
    (``seed + rank``), so capped draws differ between ranks.

    The capped choice draws ``2K + 16`` random other positions per row, keeps ``K`` distinct
    valid ones at random, and redoes exactly (random keys over the whole batch) the rows that
    did not find enough: ``O(N K)`` work when the batch has enough distinct positives, uniform
    in every case.

    Args:
        seed: base seed of the generator (rank ``r`` uses ``seed + r``).
        never_drawn: ids that are never valid negatives (padding, ``<unk>``).
        all_others: every row gets all ``N - 1`` others whatever ``K`` the task asks for (the
            usual in-batch softmax).
        across_ranks: under DDP, draw from the positives of every rank (the global batch);
            each rank must then have the same number of positives per call. No effect in one
            process.

    Examples:
        >>> import torch
        >>> from nslightning.samplers import InBatchSampler
        >>> sampler = InBatchSampler(seed=0)
        >>> sampler.setup(torch.ones(10))  # the batch is the distribution: counts are unused
        >>> positives = torch.tensor([4, 7, 4, 2])
        >>> negatives = sampler.sample(positives, 3)  # K = N - 1: every other position
        >>> negatives.ids.tolist()
        [[7, 4, 2], [4, 4, 2], [4, 7, 2], [4, 7, 4]]
        >>> negatives.mask.tolist()  # the other copy of 4 is no negative for a row of 4
        [[True, False, True], [True, True, True], [False, True, True], [True, True, True]]
        >>> [round(q, 3) for q in negatives.log_q[1].exp().tolist()]  # count / (N - 1) for 7
        [0.667, 0.667, 0.333]
        >>> sampler.sample(positives, 2).ids.shape  # K below N - 1: chosen at random
        torch.Size([4, 2])
        >>> sampler.sample(positives, 9).ids.shape  # K only caps the N - 1 others
        torch.Size([4, 3])
    """

    batch_based = True

    def __init__(
        self,
        seed: int = 0,
        never_drawn: Sequence[int] | None = None,
        all_others: bool = False,
        across_ranks: bool = False,
    ) -> None:
        super().__init__(seed=seed)
        self.all_others = bool(all_others)
        self.across_ranks = bool(across_ranks)
        self._set_never_drawn(never_drawn)

    def _setup(self, counts: Tensor) -> None:
        pass  # the batch is the distribution

    def draws_from_items(self) -> bool:
        return False  # K caps the batch's others, whatever the number of items

    def _pool(self, rows: Tensor) -> tuple[Tensor, Tensor]:
        """The candidates ``(P,)`` and each row's own position in them ``(N,)``."""
        pool, offset = gather_ids(rows) if self.across_ranks else (rows, 0)
        own = torch.arange(rows.numel(), device=rows.device) + offset
        return pool, own

    def _draw(self, request: DrawRequest) -> Draw:
        positives = request.positives
        rows = positives.reshape(-1).long()
        pool, own = self._pool(rows)
        size = pool.numel()
        columns = max(size - 1, 0)
        if not self.all_others:
            columns = min(request.num_negatives, columns)
        drawable = self.drawable(pool)
        if columns == size - 1:
            others = torch.arange(columns, device=rows.device)[None, :]
            positions = others + (others >= own[:, None]).long()  # (N, P-1): every j != own
        else:
            positions = self._choose(pool, rows, own, drawable, columns, request.generator)
        ids = pool[positions]
        valid = drawable[positions]
        log_q = self._row_log_frequency(ids, rows, pool, drawable)
        shape = (*positives.shape, columns)
        return Draw(ids.view(shape), log_q.view(shape), valid.view(shape), positions.view(shape))

    def _choose(
        self,
        pool: Tensor,
        rows: Tensor,
        own: Tensor,
        drawable: Tensor,
        columns: int,
        generator: torch.Generator,
    ) -> Tensor:
        """``(N, columns)`` positions of ``pool`` other than ``own``, a uniform choice among
        the valid ones (``rows (N,)`` are the rows' positives)."""
        size, num = pool.numel(), rows.numel()
        if num * size <= MAX_KEYS:
            return self._choose_exactly(pool, rows, own, drawable, columns, generator)
        draws = min(size - 1, 2 * columns + 16)
        offsets = torch.randint(1, size, (num, draws), device=pool.device, generator=generator)
        positions = (own[:, None] + offsets) % size
        bad = (pool[positions] == rows[:, None]) | ~drawable[positions]
        keys = torch.rand((num, draws), device=pool.device, generator=generator)
        keys += bad.float() + 2.0 * repeated_in_row(positions).float()
        best = keys.topk(columns, dim=1, largest=False)
        chosen = positions.gather(1, best.indices)
        # Rows that found fewer than K distinct valid positions: chosen again over the whole
        # batch (so a position is never taken twice and no valid candidate is passed over).
        found = (best.values < 1.0).sum(dim=1)
        short = torch.nonzero(found < columns).squeeze(1)
        if short.numel() > 0:
            chosen[short] = self._choose_exactly(
                pool, rows[short], own[short], drawable, columns, generator
            )
        return chosen

    @staticmethod
    def _choose_exactly(
        pool: Tensor,
        rows: Tensor,
        own: Tensor,
        drawable: Tensor,
        columns: int,
        generator: torch.Generator,
    ) -> Tensor:
        """``(len(rows), columns)`` by random keys over the whole pool, valid ones first."""
        size = pool.numel()
        block = max(1, MAX_KEYS // max(size, 1))
        chosen = []
        for start in range(0, rows.numel(), block):
            part = slice(start, start + block)
            part_rows, part_own = rows[part], own[part]
            keys = torch.rand((part_rows.numel(), size), device=pool.device, generator=generator)
            invalid = (part_rows[:, None] == pool[None, :]) | ~drawable[None, :]
            keys += invalid.float()  # valid keys in [0, 1), invalid in [1, 2)
            keys[torch.arange(part_rows.numel(), device=pool.device), part_own] = 3.0  # itself
            chosen.append(keys.topk(columns, dim=1, largest=False).indices)
        return torch.cat(chosen) if chosen else pool.new_empty((0, columns))

    def _row_log_frequency(
        self, ids: Tensor, rows: Tensor, pool: Tensor, drawable: Tensor
    ) -> Tensor:
        """``(N, M)`` ``log(count(id) / (P' - c_i))`` for ``ids (N, M)`` of rows ``rows (N,)``:
        ``P'`` drawable positions of ``pool``, ``c_i`` copies of row ``i``'s own positive
        (``log(count / P')`` for those copies)."""
        population = pool.masked_fill(~drawable, -1)
        own_drawable = self.drawable(rows)
        own_counts = count_in(rows.masked_fill(~own_drawable, -1), population)
        own = torch.where(own_drawable, own_counts, torch.zeros_like(own_counts))  # c_i
        candidates = (drawable.sum() - own).clamp_min(1)
        log_count = log_frequency(ids, population, 1)
        log_q = log_count - candidates.float().log().unsqueeze(-1)
        # A copy of the row's own positive is never a valid draw (it is masked): give it the
        # plain batch frequency, a finite log-probability.
        batch = log_count - drawable.sum().clamp_min(1).float().log()
        return torch.where(ids == rows.unsqueeze(-1), batch, log_q)

    def log_prob(self, ids: Tensor, positives: Tensor, exclude: Tensor | None = None) -> Tensor:
        """``log(count(id) / (P - c))`` per row; ``-inf`` for the row's own positive and for
        ids not among the candidates (a collective with ``across_ranks``)."""
        rows = positives.reshape(-1).long()
        pool, _ = self._pool(rows)
        flat_ids = ids.reshape(rows.numel(), -1)
        log_q = self._row_log_frequency(flat_ids, rows, pool, self.drawable(pool))
        log_q = log_q.masked_fill(flat_ids == rows[:, None], float("-inf"))
        return log_q.view(ids.shape)

    def extra_repr(self) -> str:
        excluded = f"never_drawn={self.never_drawn}, " if self.never_drawn else ""
        spans = "across_ranks=True, " if self.across_ranks else ""
        return f"all_others={self.all_others}, " + spans + excluded + super().extra_repr()
