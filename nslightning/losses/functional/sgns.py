"""The skip-gram negative-sampling loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from nslightning.deprecation import warn_renamed
from nslightning.losses._checks import (
    Reduction,
    TotalReduction,
    check_shapes,
    drop_masked,
    reduce_pairs,
)


def sgns_loss(
    pos_scores: Tensor,
    neg_scores: Tensor,
    *old_neg_mask: Tensor | None,
    neg_mask: Tensor | None = None,
    weights: Tensor | None = None,
    reduction: Reduction = "mean",
    reduce_total: TotalReduction | None = None,
    lam: float = 1.0,
    weight: Tensor | None = None,
) -> Tensor:
    """Skip-gram negative-sampling loss (Mikolov et al. 2013), numerically stable.

    For one positive pair with score ``s`` and negatives with scores ``n_k``::

        loss = -log σ(s) - λ Σ_k log σ(-n_k)

    computed with ``logsigmoid`` so that extreme scores give finite values and gradients; a
    dropped negative's score (even inf or NaN) reaches neither the value nor the gradient.

    Args:
        pos_scores: ``(*)`` scores of the positive pairs.
        neg_scores: ``(*, K)`` scores of the negatives of each pair.
        old_neg_mask: the old positional ``neg_mask``; deprecated, write ``neg_mask=``.
        neg_mask: ``(*, K)`` bool (broadcastable), ``False`` drops a negative (accidental hit).
        weights: ``(*)`` (broadcastable) per-pair weights; ``0`` drops a padded pair.
        reduction: ``"none"`` returns ``(*)``; ``"sum"`` the weighted sum; ``"mean"`` the weighted
            sum divided by the total weight (the number of pairs when ``weights`` is ``None``).
        reduce_total: maps the mean's local total weight to the one to divide by (see
            :func:`weighted_contrastive_loss`).
        lam: weight ``λ >= 0`` of the negatives' terms, as in the weighted contrastive loss;
            ``1`` is SGNS.
        weight: the old name of ``weights``; deprecated.

    Returns:
        The loss, a scalar unless ``reduction="none"``.

    Examples:
        >>> import torch
        >>> from nslightning.losses import sgns_loss
        >>> pos, neg = torch.tensor([2.0, 0.5]), torch.tensor([[0.0, -1.0], [1.0, 3.0]])
        >>> round(float(sgns_loss(pos, neg)), 4)
        2.9846
        >>> mask = torch.tensor([[True, True], [True, False]])  # drops the score 3.0
        >>> round(float(sgns_loss(pos, neg, neg_mask=mask, reduction="sum")), 4)
        2.9207
    """
    if old_neg_mask:
        if len(old_neg_mask) > 1 or neg_mask is not None:
            raise TypeError(
                "sgns_loss takes pos_scores and neg_scores positionally; pass neg_mask=, "
                "weights=, reduction= and lam= by keyword."
            )
        warn_renamed("sgns_loss", "a positional neg_mask", "neg_mask=...")
        neg_mask = old_neg_mask[0]
    if weight is not None:
        if weights is not None:
            raise TypeError("sgns_loss: pass weights= alone (weight= is its deprecated name).")
        warn_renamed("sgns_loss", "weight=", "weights=")
        weights = weight
    check_shapes("sgns_loss", pos_scores, neg_scores, neg_mask=neg_mask, weights=weights)
    if not lam >= 0:
        raise ValueError(f"sgns_loss: lam (λ) must be >= 0, got {lam}; 1 is SGNS.")
    neg_terms = F.logsigmoid(-drop_masked(neg_scores, neg_mask))
    if neg_mask is not None:
        neg_terms = torch.where(neg_mask, neg_terms, 0.0)
    per_pair = -F.logsigmoid(pos_scores) - lam * neg_terms.sum(-1)
    return reduce_pairs(per_pair, weights, reduction, reduce_total)
