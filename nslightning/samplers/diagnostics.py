"""What a sampler's negatives look like: hit rate, diversity, hardness, frequency ranks."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from nslightning.samplers.base import Negatives, hit_mask


def rank_bins(vocab_size: int) -> list[tuple[int, int]]:
    """Decade bins ``[0, 10), [10, 100), ...`` of frequency ranks covering ``vocab_size`` ids."""
    bins, low = [], 0
    while low < vocab_size:
        high = min(10 * max(low, 1), vocab_size)
        bins.append((low, high))
        low = high
    return bins


def negative_statistics(
    negatives: Negatives,
    vocab_size: int,
    pos_scores: Tensor | None = None,
    neg_scores: Tensor | None = None,
    *,
    positives: Tensor | None = None,
    exclude: Tensor | None = None,
) -> dict[str, Tensor]:
    """Summary statistics of one draw, as scalars on the draw's device (no host sync).

    Args:
        negatives: the draw, ``(*, K)``.
        vocab_size: vocabulary size ``V``; ids are frequency ranks (most frequent first).
        pos_scores: scores of the positives (any shape; all entries count), or ``None``.
        neg_scores: ``(*, K)`` scores of the negatives (masked slots are ignored), or ``None``.
        positives: ``(*)`` the positives of the draw, to tell accidental hits from empty slots.
        exclude: ``(*, C)`` the known positives passed to ``sample``, if any.

    Returns:
        ``hit_rate`` (share of slots that are accidental hits: equal to the positive or an
        excluded id; all masked slots when ``positives`` is not given), ``masked_rate`` (share of
        masked slots: hits and empty slots), ``unique_fraction`` (distinct valid ids over valid
        slots), ``pos_score``, ``neg_score`` and ``score_gap`` (when scores are given; a small
        gap means hard negatives), ``hard_share`` (share of kept negatives scoring at least
        their row's positive, when there is one positive per row), and
        ``rank_share/<low>-<high>`` (share of the valid negatives whose id is a frequency rank
        in ``[low, high)``).
    """
    ids, mask = negatives.ids, negatives.mask
    stats: dict[str, Tensor] = {}
    num = ids.shape[-1]
    if ids.numel() == 0:
        return stats
    masked_rate = 1.0 - mask.float().mean()
    if positives is not None:
        stats["hit_rate"] = hit_mask(ids, positives, exclude).float().mean()
    else:
        stats["hit_rate"] = masked_rate
    stats["masked_rate"] = masked_rate
    # Masked slots get distinct negative placeholders, so they never count as repeats.
    placeholders = -1 - torch.arange(num, device=ids.device)
    rows = torch.where(mask, ids, placeholders).reshape(-1, num).sort(dim=1).values
    distinct = 1 + (rows[:, 1:] != rows[:, :-1]).sum()
    num_valid = mask.sum()
    distinct_valid = distinct + rows.shape[0] - 1 - (mask.numel() - num_valid)
    stats["unique_fraction"] = distinct_valid / num_valid.clamp_min(1)
    if pos_scores is not None and pos_scores.numel() > 0:
        stats["pos_score"] = pos_scores.float().mean()
    if neg_scores is not None:
        weight = mask.to(neg_scores.dtype)
        stats["neg_score"] = (neg_scores * weight).sum() / weight.sum().clamp_min(1.0)
    if "pos_score" in stats and "neg_score" in stats:
        stats["score_gap"] = stats["pos_score"] - stats["neg_score"]
        assert pos_scores is not None and neg_scores is not None
        if pos_scores.shape == neg_scores.shape[:-1]:  # one positive per row: how hard
            above = (neg_scores >= pos_scores.unsqueeze(-1)) & mask
            stats["hard_share"] = above.sum() / mask.sum().clamp_min(1)
    total = num_valid.clamp_min(1)
    for low, high in rank_bins(vocab_size):
        share = ((ids >= low) & (ids < high) & mask).sum() / total
        stats[f"rank_share/{low}-{high}"] = share.float()
    return stats


def rank_histogram(negatives: Negatives, vocab_size: int, bins: int = 32) -> tuple[Tensor, Tensor]:
    """Histogram of ``log10(rank + 1)`` of the valid negatives (for a W&B histogram).

    Returns:
        ``counts (bins,)`` and ``edges (bins + 1,)``, float on the CPU.
    """
    valid = negatives.ids[negatives.mask].double().cpu()
    top = math.log10(vocab_size + 1)
    counts = torch.histc(torch.log10(valid + 1), bins=bins, min=0.0, max=top)
    edges = torch.linspace(0.0, top, bins + 1, dtype=torch.float64)
    return counts, edges
