"""Filtered ranking metrics: MRR, Hits@k, mean rank and MAP, as functions and a torchmetric."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric

# Scores on the CPU in these dtypes are counted row by row with NumPy's vectorised comparisons;
# any other (another device, half precision) by bucketing the whole chunk at once in torch.
_ROW_BY_ROW_DTYPES = (torch.float32, torch.float64)
# Up to this many distinct target scores, a row is counted with two comparison passes per
# score; beyond, with one binary search per candidate (np.searchsorted), which is then cheaper.
_MAX_COMPARED = 200


def filtered_ranks(scores: Tensor, targets: Tensor, filtered: Tensor) -> Tensor:
    """The rank of each target among the candidates that are not filtered out.

    A target's rank is ``1 + (#competitors scoring higher) + (#competitors tied) / 2``, where
    competitors are the candidates not in ``filtered`` (the "filtered" setting of link
    prediction: an anchor's other known positives are not errors). Ties count half, the mean of
    the optimistic and pessimistic ranks.

    Non-finite scores: the filtered candidates count as competitors scoring ``-inf`` (they tie
    with a target scoring ``-inf``, and only with it); a target scoring ``nan`` ranks 1; a
    competitor scoring ``nan`` ranks above every target except one scoring ``+inf``, with which
    it ties.

    No row of ``V`` scores is sorted: the competitors below each distinct target score, and
    those below or tied, are counted. On the CPU (float32, float64) row by row, with no
    ``(A, V)`` temporary: two vectorised comparison passes per target score, or a binary search
    of each candidate among the target scores for a row with more than ``_MAX_COMPARED`` of
    them; elsewhere, for the whole chunk at once: a binary search of each candidate among its
    row's target scores, then a histogram of the results per row.

    Args:
        scores: ``(A, V)`` scores of every candidate for ``A`` anchors.
        targets: ``(A, M)`` candidate ids to rank (``-1`` pads).
        filtered: ``(A, V)`` bool, ``True`` for candidates that do not compete (every known
            positive of the anchor, targets included).

    Returns:
        ``(A, M)`` float ranks (dtype of ``scores``), ``nan`` at pads.
    """
    scores = scores.detach()
    num_candidates = scores.shape[1]
    target_scores = scores.gather(1, targets.clamp_min(0))
    if scores.device.type == "cpu" and scores.dtype in _ROW_BY_ROW_DTYPES:
        below, below_or_tied = _counts_row_by_row(scores, target_scores, targets >= 0, filtered)
    else:
        below, below_or_tied = _counts_by_bucketing(scores, target_scores, filtered)
    nan_target = torch.isnan(target_scores)
    below = below.masked_fill(nan_target, num_candidates)
    below_or_tied = below_or_tied.masked_fill(
        nan_target | torch.isposinf(target_scores), num_candidates
    )
    higher = num_candidates - below_or_tied
    ranks = 1.0 + higher.to(scores.dtype) + 0.5 * (below_or_tied - below).to(scores.dtype)
    return ranks.masked_fill(targets < 0, float("nan"))


def _counts_row_by_row(
    scores: Tensor, target_scores: Tensor, real: Tensor, filtered: Tensor
) -> tuple[Tensor, Tensor]:
    """``(#competitors < t, #competitors <= t)`` for each real, non-nan target score ``t``
    (zeros elsewhere), CPU scores, one row at a time in NumPy.

    Filtered candidates are competitors scoring ``-inf``; ``nan`` competitors are neither below
    nor tied.
    """
    num_anchors, num_candidates = scores.shape
    values = scores.numpy()
    masks = filtered.cpu().numpy()
    row_targets = target_scores.numpy()
    counted = (real & ~torch.isnan(target_scores)).cpu().numpy()
    below = np.zeros(row_targets.shape, dtype=np.int64)
    below_or_tied = np.zeros(row_targets.shape, dtype=np.int64)
    competitors = np.empty(num_candidates, dtype=values.dtype)
    hits = np.empty(num_candidates, dtype=np.bool_)
    for anchor in range(num_anchors):
        columns = np.flatnonzero(counted[anchor])
        if columns.size == 0:
            continue
        row = values[anchor]
        if masks[anchor].any():
            np.copyto(competitors, row)
            np.copyto(competitors, -np.inf, where=masks[anchor])
            row = competitors
        distinct, inverse = np.unique(row_targets[anchor, columns], return_inverse=True)
        if distinct.size <= _MAX_COMPARED:
            lower = np.empty(distinct.size, dtype=np.int64)
            upper = np.empty(distinct.size, dtype=np.int64)
            for j, value in enumerate(distinct):
                lower[j] = np.count_nonzero(np.less(row, value, out=hits))
                upper[j] = np.count_nonzero(np.less_equal(row, value, out=hits))
        else:
            lower, upper = _bucket_counts(row, distinct, hits)
        below[anchor, columns] = lower[inverse]
        below_or_tied[anchor, columns] = upper[inverse]
    return torch.from_numpy(below), torch.from_numpy(below_or_tied)


def _bucket_counts(
    row: np.ndarray, distinct: np.ndarray, hits: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(#row < t, #row <= t)`` for each of the sorted, distinct, non-nan ``t``, by a binary
    search of each candidate among the boundaries ``t`` and ``nextafter(t, +inf)``: a candidate
    lands in the bucket of a target score iff it equals it, below it iff it is smaller. The
    candidates below every target are only counted."""
    bounds = np.union1d(distinct, np.nextafter(distinct, distinct.dtype.type(np.inf)))
    np.less(row, bounds[0], out=hits)
    lowest = np.count_nonzero(hits)
    # nan is not below anything: searchsorted puts it after every boundary.
    codes = np.searchsorted(bounds, row[~hits], side="right")
    counts = np.bincount(codes, minlength=bounds.size + 1)
    counts[0] += lowest
    target_codes = np.searchsorted(bounds, distinct, side="right")
    upper = np.cumsum(counts)[target_codes]
    return upper - counts[target_codes], upper


def _counts_by_bucketing(
    scores: Tensor, target_scores: Tensor, filtered: Tensor
) -> tuple[Tensor, Tensor]:
    """``(#competitors < t, #competitors <= t)`` for each non-nan target score ``t``, the whole
    chunk at once (any device): each competitor's bucket among its row's boundaries ``t`` and
    ``nextafter(t, +inf)`` (a binary search), then a histogram of the buckets of each row.

    Filtered candidates are competitors scoring ``-inf``; ``nan`` competitors are neither below
    nor tied. ``nan`` targets add boundaries at ``+inf``; a pad adds the score of candidate 0
    as a boundary, which splits a bucket without changing any count.
    """
    num_anchors, width = target_scores.shape
    if num_anchors == 0 or width == 0:
        empty = torch.zeros(target_scores.shape, dtype=torch.int64, device=scores.device)
        return empty, empty.clone()
    work = scores.dtype if scores.dtype in (torch.float32, torch.float64) else torch.float32
    limits = target_scores.to(work).masked_fill(torch.isnan(target_scores), float("inf"))
    above = torch.nextafter(limits, torch.full_like(limits, float("inf")))
    bounds = torch.cat([limits, above], 1).sort(1).values
    buckets = bounds.shape[1] + 1
    competitors = scores.to(work, memory_format=torch.contiguous_format, copy=True)
    competitors.masked_fill_(filtered, float("-inf"))
    small = num_anchors * buckets < 2**31
    codes = torch.searchsorted(bounds, competitors, right=True, out_int32=small)
    del competitors
    offsets = torch.arange(num_anchors, device=codes.device, dtype=codes.dtype) * buckets
    codes += offsets.unsqueeze(1)
    counts = torch.bincount(codes.view(-1), minlength=num_anchors * buckets)
    counts = counts.view(num_anchors, buckets)
    del codes
    target_codes = torch.searchsorted(bounds, limits, right=True)
    below_or_tied = counts.cumsum(1).gather(1, target_codes)
    return below_or_tied - counts.gather(1, target_codes), below_or_tied


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
