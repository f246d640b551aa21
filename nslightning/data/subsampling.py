"""word2vec's down-sampling of frequent words."""

from __future__ import annotations

import torch
from torch import Tensor


def keep_probabilities(counts: Tensor, sample: float) -> Tensor:
    """Probability of keeping each occurrence of a word (Mikolov et al. 2013; word2vec.c).

    With ``t = sample * total`` and ``f`` a word's count::

        keep = (sqrt(f / t) + 1) * t / f, clipped to [0, 1]

    Args:
        counts: ``(V,)`` word counts.
        sample: threshold, e.g. ``1e-3`` (word2vec's default); must be > 0.

    Returns:
        ``(V,)`` float32 keep probabilities.
    """
    if not sample > 0:
        raise ValueError(
            f"sample must be > 0, got {sample}; use 1e-3 (word2vec) to 1e-5, or None to disable "
            "down-sampling."
        )
    counts = counts.to(torch.float64)
    threshold = sample * counts.sum()
    keep = (torch.sqrt(counts / threshold) + 1.0) * threshold / counts.clamp_min(1.0)
    return keep.clamp(0.0, 1.0).to(torch.float32)
