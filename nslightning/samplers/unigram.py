"""Unigram^power negatives (word2vec's noise distribution with power 0.75)."""

from __future__ import annotations

import torch
from torch import Tensor

from nslightning.samplers.alias import build_alias_table, draw_from_alias
from nslightning.samplers.base import NegativeSampler, Scorer

MAX_POWER = 2.0


class UnigramSampler(NegativeSampler):
    """Draws item ``i`` with probability ``counts[i]**power / sum(counts**power)``.

    ``power=0.75`` is word2vec's choice (Mikolov et al. 2013), ``1`` the unigram distribution and
    ``0`` uniform. Draws are exact (Vose's alias method, O(V) memory, O(1) per draw); items with
    zero count are never drawn unless ``power == 0``.

    Args:
        power: exponent applied to the counts, in ``[0, 2]``.
        seed: base seed of the generator (rank ``r`` uses ``seed + r``).
    """

    accept: Tensor
    alias: Tensor
    log_probs: Tensor

    def __init__(self, power: float = 0.75, seed: int = 0) -> None:
        super().__init__(seed=seed)
        if not 0.0 <= power <= MAX_POWER:
            raise ValueError(
                f"UnigramSampler power must be in [0, {MAX_POWER}], got {power}; "
                "0.75 is word2vec's choice, 0 gives uniform and 1 the unigram distribution."
            )
        self.power = float(power)
        self.register_buffer("accept", torch.empty(0))
        self.register_buffer("alias", torch.empty(0, dtype=torch.int64))
        self.register_buffer("log_probs", torch.empty(0))

    def _setup(self, counts: Tensor) -> None:
        weights = counts.pow(self.power) if self.power > 0 else torch.ones_like(counts)
        total = weights.sum()
        if total <= 0:
            raise ValueError(
                "UnigramSampler.setup: all counts are zero, so no item can be drawn; "
                "build the vocabulary from a non-empty corpus."
            )
        probs = weights / total
        accept, alias = build_alias_table(probs)
        device = self.accept.device
        self.accept = accept.to(device=device, dtype=torch.float32)
        self.alias = alias.to(device)
        self.log_probs = probs.log().to(device=device, dtype=torch.float32)

    def probabilities(self) -> Tensor:
        """``(V,)`` the exact sampling distribution."""
        return self.log_probs.double().exp()

    def _draw(
        self,
        positives: Tensor,
        num_negatives: int,
        generator: torch.Generator,
        anchors: Tensor | None,
        scorer: Scorer | None,
    ) -> tuple[Tensor, Tensor]:
        ids = draw_from_alias(
            self.accept, self.alias, (*positives.shape, num_negatives), generator
        )
        return ids, self.log_probs[ids]

    def extra_repr(self) -> str:
        return f"power={self.power}, " + super().extra_repr()
