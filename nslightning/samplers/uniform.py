"""Uniform negatives: every item is equally likely."""

from __future__ import annotations

import torch
from torch import Tensor

from nslightning.samplers.table import TableSampler


class UniformSampler(TableSampler):
    """Draws negatives uniformly from the ``V`` items (with replacement unless ``unique``).

    This is the distribution of Keras' ``skipgrams`` and of ``UnigramSampler(power=0)``.
    Without ``never_drawn`` a draw is one ``randint``; with it, an alias table over the others.

    Args:
        seed: base seed of the generator (rank ``r`` uses ``seed + r``).
        never_drawn: ids never drawn (padding, ``<unk>``).
        unique: no id twice in a row (see :class:`~nslightning.samplers.table.TableSampler`).
        redraw: redraw accidental hits instead of masking them.

    Examples:
        >>> import torch
        >>> from nslightning.samplers import UniformSampler
        >>> sampler = UniformSampler(seed=0)
        >>> sampler.setup(torch.ones(6))
        >>> negatives = sampler.sample(torch.tensor([0, 1, 2]), 4)
        >>> negatives.ids.tolist()
        [[2, 3, 5, 0], [1, 3, 1, 1], [1, 3, 5, 2]]
        >>> negatives.mask.tolist()  # False on accidental hits: a draw equal to the positive
        [[True, True, True, False], [False, True, False, False], [True, True, True, False]]
        >>> round(negatives.log_q[0, 0].exp().item(), 4)  # 1 / V
        0.1667
    """

    closed_form = True

    def _weights(self, counts: Tensor) -> Tensor:
        return torch.ones_like(counts)

    def _closed_form_draw(self, num: int, generator: torch.Generator) -> Tensor:
        return torch.randint(
            self.vocab_size, (num,), device=generator.device, generator=generator,
            dtype=torch.int64,
        )
