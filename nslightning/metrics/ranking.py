"""Filtered ranking metrics: MRR, Hits@k, mean rank and MAP, as functions and a torchmetric."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torchmetrics import Metric


def filtered_ranks(scores: Tensor, targets: Tensor, filtered: Tensor) -> Tensor:
    """The rank of each target among the candidates that are not filtered out.

    A target's rank is ``1 + (#competitors scoring higher) + (#competitors tied) / 2``, where
    competitors are the candidates not in ``filtered`` (the "filtered" setting of link
    prediction: an anchor's other known positives are not errors). Ties count half, the mean of
    the optimistic and pessimistic ranks.

    Args:
        scores: ``(A, V)`` scores of every candidate for ``A`` anchors.
        targets: ``(A, M)`` candidate ids to rank (``-1`` pads).
        filtered: ``(A, V)`` bool, ``True`` for candidates that do not compete (every known
            positive of the anchor, targets included).

    Returns:
        ``(A, M)`` float ranks, ``nan`` at pads.
    """
    num_candidates = scores.shape[1]
    target_scores = scores.gather(1, targets.clamp_min(0))
    competitors = scores.masked_fill(filtered, float("-inf")).sort(dim=1).values
    below_or_tied = torch.searchsorted(competitors, target_scores, right=True)
    below = torch.searchsorted(competitors, target_scores, right=False)
    higher = num_candidates - below_or_tied
    ranks = 1.0 + higher.to(scores.dtype) + 0.5 * (below_or_tied - below).to(scores.dtype)
    return ranks.masked_fill(targets < 0, float("nan"))


def average_precision(target_scores: Tensor, ranks: Tensor) -> Tensor:
    """Average precision of each anchor's targets, from their filtered ranks.

    With the targets of a row sorted by score, the ``i``-th has ``i - 1`` targets and
    ``rank - 1`` competitors above it, so the precision at its position is
    ``i / (i + rank - 1)``; AP is the mean over the row's targets.

    Args:
        target_scores: ``(A, M)`` the targets' scores.
        ranks: ``(A, M)`` their :func:`filtered_ranks` (``nan`` at pads).

    Returns:
        ``(A,)`` AP of each row (``nan`` for a row without targets).
    """
    real = ~torch.isnan(ranks)
    order = target_scores.masked_fill(~real, float("-inf")).argsort(dim=1, descending=True)
    sorted_ranks = ranks.gather(1, order)
    sorted_real = real.gather(1, order)
    position = torch.arange(1, ranks.shape[1] + 1, device=ranks.device, dtype=ranks.dtype)
    precision = position / (position + sorted_ranks - 1.0)
    total = torch.where(sorted_real, precision, 0.0).sum(1)
    return total / sorted_real.sum(1)


class FilteredRanking(Metric):
    """Accumulates filtered ranking metrics over evaluation chunks (sums; DDP-safe).

    :meth:`compute` returns ``mrr`` (mean reciprocal rank), ``mean_rank``, ``hits@k`` (share of
    targets ranked ``<= k``) over every target pair, and ``map`` (mean over anchors of the
    average precision of their targets).

    Args:
        ks: the ``k`` of ``hits@k``.
    """

    full_state_update = False
    reciprocal_rank_sum: Tensor
    rank_sum: Tensor
    hits: Tensor
    pairs: Tensor
    ap_sum: Tensor
    anchors: Tensor

    def __init__(self, ks: Sequence[int] = (1, 3, 10)) -> None:
        super().__init__()
        if not ks or any(k < 1 for k in ks):
            raise ValueError(f"ks must be a non-empty list of integers >= 1, got {list(ks)}.")
        self.ks = tuple(int(k) for k in ks)
        zero = torch.zeros((), dtype=torch.float64)
        for name in ("reciprocal_rank_sum", "rank_sum", "pairs", "ap_sum", "anchors"):
            self.add_state(name, default=zero.clone(), dist_reduce_fx="sum")
        self.add_state(
            "hits", default=torch.zeros(len(self.ks), dtype=torch.float64), dist_reduce_fx="sum"
        )

    def update(self, scores: Tensor, targets: Tensor, filtered: Tensor) -> None:
        """Adds a chunk of anchors; arguments as in :func:`filtered_ranks`."""
        ranks = filtered_ranks(scores, targets, filtered).double()
        real = ~torch.isnan(ranks)
        valid_ranks = ranks[real]
        self.reciprocal_rank_sum += valid_ranks.reciprocal().sum()
        self.rank_sum += valid_ranks.sum()
        self.pairs += real.sum()
        ks = torch.tensor(self.ks, device=ranks.device, dtype=ranks.dtype)
        self.hits += (valid_ranks.unsqueeze(1) <= ks).sum(0)
        target_scores = scores.gather(1, targets.clamp_min(0)).double()
        ap = average_precision(target_scores, ranks)
        has_targets = real.any(1)
        self.ap_sum += ap[has_targets].sum()
        self.anchors += has_targets.sum()

    def compute(self) -> dict[str, Tensor]:
        pairs = self.pairs.clamp_min(1.0)
        result = {
            "mrr": self.reciprocal_rank_sum / pairs,
            "mean_rank": self.rank_sum / pairs,
            "map": self.ap_sum / self.anchors.clamp_min(1.0),
        }
        for k, hits in zip(self.ks, self.hits, strict=True):
            result[f"hits@{k}"] = hits / pairs
        return result
