"""In-batch negatives: the other positives of the batch."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

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
    modeling") subtracts so that popular items are not over-penalised.

    The capped choice draws ``2K + 16`` random other positions per row, keeps ``K`` distinct
    valid ones at random, and redoes exactly (random keys over the whole batch) the rows that
    did not find enough: ``O(N K)`` work when the batch has enough distinct positives, uniform
    in every case.

    Args:
        seed: base seed of the generator (rank ``r`` uses ``seed + r``).
        never_drawn: ids that are never valid negatives (padding, ``<unk>``).
        all_others: every row gets all ``N - 1`` others whatever ``K`` the task asks for (the
            usual in-batch softmax).
    """

    def __init__(
        self, seed: int = 0, never_drawn: Sequence[int] | None = None, all_others: bool = False
    ) -> None:
        super().__init__(seed=seed)
        self.all_others = bool(all_others)
        self._set_never_drawn(never_drawn)

    def _setup(self, counts: Tensor) -> None:
        pass  # the batch is the distribution

    def _draw(self, request: DrawRequest) -> Draw:
        positives = request.positives
        flat = positives.reshape(-1).long()
        num = flat.numel()
        columns = max(num - 1, 0)
        if not self.all_others:
            columns = min(request.num_negatives, columns)
        drawable = self.drawable(flat)
        if columns == num - 1:
            rows = torch.arange(num, device=flat.device)[:, None]
            others = torch.arange(columns, device=flat.device)[None, :]
            positions = others + (others >= rows).long()  # (N, N-1): every j != i, in order
        else:
            positions = self._choose(flat, drawable, columns, request.generator)
        ids = flat[positions]
        valid = drawable[positions]
        log_q = self._row_log_frequency(ids, flat, drawable)
        shape = (*positives.shape, columns)
        return Draw(ids.view(shape), log_q.view(shape), valid.view(shape))

    def _choose(
        self, flat: Tensor, drawable: Tensor, columns: int, generator: torch.Generator
    ) -> Tensor:
        """``(N, columns)`` positions ``j != i``, a uniform choice among the valid ones."""
        num, device = flat.numel(), flat.device
        rows = torch.arange(num, device=device)
        if num * num <= MAX_KEYS:
            return self._choose_exactly(flat, drawable, rows, columns, generator)
        draws = min(num - 1, 2 * columns + 16)
        offsets = torch.randint(1, num, (num, draws), device=device, generator=generator)
        positions = (rows[:, None] + offsets) % num
        bad = (flat[positions] == flat[:, None]) | ~drawable[positions]
        keys = torch.rand((num, draws), device=device, generator=generator)
        keys += bad.float() + 2.0 * repeated_in_row(positions).float()
        best = keys.topk(columns, dim=1, largest=False)
        chosen = positions.gather(1, best.indices)
        # Rows that found fewer than K distinct valid positions: chosen again over the whole
        # batch (so a position is never taken twice and no valid candidate is passed over).
        found = (best.values < 1.0).sum(dim=1)
        short = torch.nonzero(found < columns).squeeze(1)
        if short.numel() > 0:
            chosen[short] = self._choose_exactly(flat, drawable, short, columns, generator)
        return chosen

    @staticmethod
    def _choose_exactly(
        flat: Tensor, drawable: Tensor, rows: Tensor, columns: int, generator: torch.Generator
    ) -> Tensor:
        """``(len(rows), columns)`` by random keys over the whole batch, valid ones first."""
        num = flat.numel()
        block = max(1, MAX_KEYS // max(num, 1))
        chosen = []
        for start in range(0, rows.numel(), block):
            part = rows[start : start + block]
            keys = torch.rand((part.numel(), num), device=flat.device, generator=generator)
            invalid = (flat[part, None] == flat[None, :]) | ~drawable[None, :]
            keys += invalid.float()  # valid keys in [0, 1), invalid in [1, 2)
            keys[torch.arange(part.numel(), device=flat.device), part] = 3.0  # never itself
            chosen.append(keys.topk(columns, dim=1, largest=False).indices)
        return torch.cat(chosen) if chosen else flat.new_empty((0, columns))

    @staticmethod
    def _row_log_frequency(ids: Tensor, flat: Tensor, drawable: Tensor) -> Tensor:
        """``(N, M)`` ``log(count(id) / (N' - c_i))`` for ``ids (N, M)``, rows of ``flat``
        (``log(count / N')`` for copies of the row's own positive)."""
        population = flat.masked_fill(~drawable, -1)
        counts = count_in(population, population)
        own = torch.where(drawable, counts, torch.zeros_like(counts))  # c_i
        candidates = (drawable.sum() - own).clamp_min(1)
        log_count = log_frequency(ids, population, 1)
        log_q = log_count - candidates.float().log().unsqueeze(-1)
        # A copy of the row's own positive is never a valid draw (it is masked): give it the
        # plain batch frequency, a finite log-probability.
        batch = log_count - drawable.sum().clamp_min(1).float().log()
        return torch.where(ids == flat.unsqueeze(-1), batch, log_q)

    def log_prob(self, ids: Tensor, positives: Tensor, exclude: Tensor | None = None) -> Tensor:
        """``log(count(id) / (N - c))`` per row; ``-inf`` for the row's own positive and for
        ids not in the batch."""
        flat = positives.reshape(-1).long()
        rows = ids.reshape(flat.numel(), -1)
        log_q = self._row_log_frequency(rows, flat, self.drawable(flat))
        log_q = log_q.masked_fill(rows == flat[:, None], float("-inf"))
        return log_q.view(ids.shape)

    def extra_repr(self) -> str:
        excluded = f"never_drawn={self.never_drawn}, " if self.never_drawn else ""
        return f"all_others={self.all_others}, " + excluded + super().extra_repr()
