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
    """

    closed_form = True

    def _weights(self, counts: Tensor) -> Tensor:
        return torch.ones_like(counts)

    def _closed_form_draw(self, num: int, generator: torch.Generator) -> Tensor:
        return torch.randint(
            self.num_items, (num,), device=generator.device, generator=generator,
            dtype=torch.int64,
        )
