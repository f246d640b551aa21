"""Unigram^power negatives (word2vec's noise distribution with power 0.75)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from nslightning.samplers.table import TableSampler

MAX_POWER = 2.0


class UnigramSampler(TableSampler):
    """Draws item ``i`` with probability ``counts[i]**power / sum(counts**power)``.

    ``power=0.75`` is word2vec's choice (Mikolov et al. 2013), ``1`` the unigram distribution and
    ``0`` uniform. Draws are exact (Vose's alias method, O(V) memory, O(1) per draw); items with
    zero count are never drawn unless ``power == 0``.

    Args:
        power: exponent applied to the counts, in ``[0, 2]``.
        seed: base seed of the generator (rank ``r`` uses ``seed + r``).
        never_drawn: ids never drawn (padding, ``<unk>``).
        unique: no id twice in a row (see :class:`~nslightning.samplers.table.TableSampler`).
        redraw: redraw accidental hits instead of masking them.

    Examples:
        >>> import torch
        >>> from nslightning.samplers import UnigramSampler
        >>> sampler = UnigramSampler(power=0.75, seed=0)
        >>> sampler.setup(torch.tensor([10.0, 5.0, 1.0, 1.0]))
        >>> [round(p, 3) for p in sampler.probabilities().tolist()]
        [0.513, 0.305, 0.091, 0.091]
        >>> negatives = sampler.sample(torch.tensor([0, 1]), 3)
        >>> negatives.ids.shape
        torch.Size([2, 3])
        >>> negatives.ids.tolist(), negatives.mask.tolist()
        ([[0, 1, 1], [0, 3, 1]], [[False, True, True], [True, True, False]])
        >>> [[round(q, 3) for q in row] for row in negatives.log_q.exp().tolist()]
        [[0.513, 0.305, 0.305], [0.513, 0.091, 0.305]]
    """

    def __init__(
        self,
        power: float = 0.75,
        seed: int = 0,
        never_drawn: Sequence[int] | None = None,
        unique: bool = False,
        redraw: bool = False,
    ) -> None:
        super().__init__(seed=seed, never_drawn=never_drawn, unique=unique, redraw=redraw)
        if not 0.0 <= power <= MAX_POWER:
            raise ValueError(
                f"UnigramSampler power must be in [0, {MAX_POWER}], got {power}; "
                "0.75 is word2vec's choice, 0 gives uniform and 1 the unigram distribution."
            )
        self.power = float(power)

    def _weights(self, counts: Tensor) -> Tensor:
        return counts.pow(self.power) if self.power > 0 else torch.ones_like(counts)

    def extra_repr(self) -> str:
        return f"power={self.power}, " + super().extra_repr()
