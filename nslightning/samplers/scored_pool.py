"""Choosing negatives from a pool of candidates by the current model's scores.

The selection shared by the hard-negative samplers; they differ in where the pool comes from
(a base sampler's draw, or an index mined over the whole vocabulary).
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Literal

import torch
from torch import Tensor

from nslightning.samplers.base import Draw, DrawRequest, NegativeSampler, Scorer
from nslightning.samplers.batch_counts import repeated_in_row

Selection = Literal["topk", "softmax"]


class ScoredPoolSampler(NegativeSampler):
    """Keeps ``K`` of a pool of candidates, as scored by the task's current model.

    A subclass gives each row's pool (:meth:`_pool`). From it, candidates that are hits (the
    positive, ``exclude`` of the row) or duplicates are set aside, the ``skip_top`` best are
    skipped (likely false negatives, Qu et al. 2021), and ``K`` are kept: the best
    (``selection="topk"``) or a draw without replacement from ``softmax(score / temperature)``
    (``"softmax"``, by Gumbel top-k). When a pool has too few valid candidates the rest of the
    row is masked; a pool with fewer than ``K + skip_top`` columns gives fewer negatives.

    Capabilities: :attr:`needs_scorer` (``sample`` needs ``anchors=`` and ``scorer=``; the tasks
    pass them), and ``log_q_kind`` is ``None``: the choice follows scores, not a known
    distribution, so ``log_q`` is ``None``.

    Args:
        pool_size: candidates per row, ``>= K + skip_top``.
        selection: ``"topk"`` or ``"softmax"``.
        temperature: softmax temperature ``> 0`` (``"softmax"`` only).
        skip_top: best-scoring candidates to skip.
        seed: base seed (components' seeds are derived from it).
    """

    log_q_kind = None
    needs_scorer = True

    def __init__(
        self,
        pool_size: int = 64,
        selection: Selection = "topk",
        temperature: float = 1.0,
        skip_top: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__(seed=seed)
        if pool_size < 1:
            raise ValueError(f"pool_size must be >= 1, got {pool_size}.")
        if selection not in ("topk", "softmax"):
            raise ValueError(f"selection must be 'topk' or 'softmax', got {selection!r}.")
        if not temperature > 0:
            raise ValueError(
                f"temperature must be > 0, got {temperature}; small values approach top-k "
                "(use selection='topk' for exactly that)."
            )
        if skip_top < 0:
            raise ValueError(f"skip_top must be >= 0, got {skip_top}.")
        self.pool_size = pool_size
        self.selection: Selection = selection
        self.temperature = float(temperature)
        self.skip_top = skip_top

    @abstractmethod
    def _pool(self, request: DrawRequest, anchors: Tensor, scorer: Scorer) -> tuple[Tensor, Tensor]:
        """Each row's pool: ``candidates (R, P)`` long ids and ``usable (R, P)`` bool, ``False``
        for hits and candidates that cannot be negatives (duplicates are set aside later).

        Args:
            request: the validated call.
            anchors: ``(R,)`` long, the anchors of the ``R`` rows, flattened.
            scorer: the task's scorer.
        """

    def _draw(self, request: DrawRequest) -> Draw:
        num = request.num_negatives
        if num + self.skip_top > self.pool_size:
            raise ValueError(
                f"pool_size {self.pool_size} is smaller than num_negatives {num} + skip_top "
                f"{self.skip_top}; raise pool_size (a few times K is usual)."
            )
        if request.anchors is None or request.scorer is None:
            raise ValueError(
                f"{type(self).__name__} needs anchors= and scorer= in sample(): the model scores "
                "the candidates; the tasks pass both."
            )
        positives, scorer = request.positives, request.scorer
        flat_anchors = request.anchors.long().reshape(positives.numel())
        candidates, usable = self._pool(request, flat_anchors, scorer)
        usable = usable & ~repeated_in_row(candidates)
        scores = self._score(scorer, flat_anchors, candidates)
        # A pool with fewer columns (an in-batch base) gives fewer negatives.
        num = min(num, max(candidates.shape[1] - self.skip_top, 0))
        chosen, usable = self._select(scores, usable, num, request.generator)
        ids = candidates.gather(1, chosen)
        valid = usable.gather(1, chosen)
        shape = (*positives.shape, ids.shape[-1])
        return Draw(ids.view(shape), None, valid.view(shape))

    def _score(self, scorer: Scorer, anchors: Tensor, candidates: Tensor) -> Tensor:
        """``(R, P)`` float scores of ``candidates (R, P)`` for ``anchors (R,)``, without grad."""
        with torch.no_grad():
            scores = scorer(anchors, candidates)
        if scores.shape != candidates.shape:
            raise ValueError(
                f"the scorer returned shape {tuple(scores.shape)} for candidates of shape "
                f"{tuple(candidates.shape)}; it must give one score per candidate."
            )
        return scores.float()

    def _select(
        self, scores: Tensor, usable: Tensor, num: int, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        """``(R, num)`` positions in the pool, and ``usable`` without the skipped best.

        Args:
            scores: ``(R, P)`` scores of the pool.
            usable: ``(R, P)`` bool, candidates that may be negatives.
            num: negatives per row.
            generator: for the softmax selection.
        """
        scores = scores.masked_fill(~usable, float("-inf"))
        if self.skip_top:
            # A smaller pool (an in-batch base) may hold fewer than skip_top candidates.
            top = scores.topk(min(self.skip_top, scores.shape[1]), dim=1).indices
            usable = usable.scatter(1, top, False)
            scores = scores.masked_fill(~usable, float("-inf"))
        if self.selection == "topk":
            return scores.topk(num, dim=1).indices, usable
        uniform = torch.rand(
            scores.shape, device=scores.device, generator=generator
        ).clamp_(min=1e-12, max=1.0 - 1e-7)
        gumbel = -torch.log(-torch.log(uniform))
        return (scores / self.temperature + gumbel).topk(num, dim=1).indices, usable

    def extra_repr(self) -> str:
        return (
            f"pool_size={self.pool_size}, selection={self.selection}, "
            f"temperature={self.temperature}, skip_top={self.skip_top}, " + super().extra_repr()
        )
