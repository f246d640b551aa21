"""Uniform negatives: every item is equally likely."""

from __future__ import annotations

import torch
from torch import Tensor

from nslightning.samplers.base import NegativeSampler, Scorer, uniform_log_q


class UniformSampler(NegativeSampler):
    """Draws negatives uniformly from the ``V`` items (with replacement).

    This is the distribution of Keras' ``skipgrams`` and of ``UnigramSampler(power=0)``.

    Args:
        seed: base seed of the generator (rank ``r`` uses ``seed + r``).
    """

    def _setup(self, counts: Tensor) -> None:
        pass

    def _draw(
        self,
        positives: Tensor,
        num_negatives: int,
        generator: torch.Generator,
        anchors: Tensor | None,
        scorer: Scorer | None,
    ) -> tuple[Tensor, Tensor]:
        shape = (*positives.shape, num_negatives)
        ids = torch.randint(
            self.num_items, shape, device=positives.device, generator=generator, dtype=torch.int64
        )
        return ids, uniform_log_q(self.num_items, ids.shape, positives.device)
