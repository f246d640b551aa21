"""Pure loss functions. Shapes broadcast over any leading dimensions ``*``."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

Reduction = Literal["mean", "sum", "none"]


def sgns_loss(
    pos_scores: Tensor,
    neg_scores: Tensor,
    neg_mask: Tensor | None = None,
    *,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    """Skip-gram negative-sampling loss (Mikolov et al. 2013), numerically stable.

    For one positive pair with score ``s`` and negatives with scores ``n_k``::

        loss = -log σ(s) - Σ_k log σ(-n_k)

    computed with ``logsigmoid`` so that extreme scores give finite values and gradients.

    Args:
        pos_scores: ``(*)`` scores of the positive pairs.
        neg_scores: ``(*, K)`` scores of the negatives of each pair.
        neg_mask: ``(*, K)`` bool (broadcastable), ``False`` drops a negative (accidental hit).
        weight: ``(*)`` (broadcastable) per-pair weights; ``0`` drops a padded pair.
        reduction: ``"none"`` returns ``(*)``; ``"sum"`` the weighted sum; ``"mean"`` the weighted
            sum divided by the total weight (the number of pairs when ``weight`` is ``None``).

    Returns:
        The loss, a scalar unless ``reduction="none"``.
    """
    if neg_scores.shape[:-1] != pos_scores.shape:
        raise ValueError(
            f"sgns_loss: neg_scores must be pos_scores' shape plus K, got {tuple(pos_scores.shape)}"
            f" and {tuple(neg_scores.shape)}."
        )
    for name, value, target in (
        ("neg_mask", neg_mask, neg_scores.shape),
        ("weight", weight, pos_scores.shape),
    ):
        if value is not None and _broadcast_shape(value.shape, target) != target:
            raise ValueError(
                f"sgns_loss: {name} of shape {tuple(value.shape)} does not broadcast to "
                f"{tuple(target)}; give it the shape of the scores it masks (or a broadcastable "
                "one such as (B, 1, K) against (B, C, K))."
            )
    neg_terms = F.logsigmoid(-neg_scores)
    if neg_mask is not None:
        neg_terms = neg_terms * neg_mask
    per_pair = -F.logsigmoid(pos_scores) - neg_terms.sum(-1)
    if weight is not None:
        per_pair = per_pair * weight
    if reduction == "none":
        return per_pair
    if reduction == "sum":
        return per_pair.sum()
    if reduction == "mean":
        if weight is None:
            total = per_pair.new_tensor(per_pair.numel())
        else:
            total = weight.expand_as(per_pair).sum()
        return per_pair.sum() / total.clamp_min(1e-12)
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}.")


def _broadcast_shape(shape: torch.Size, target: torch.Size) -> torch.Size | None:
    """The broadcast of ``shape`` with ``target``, or ``None`` if they do not broadcast."""
    try:
        return torch.broadcast_shapes(shape, target)
    except RuntimeError:
        return None
