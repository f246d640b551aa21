"""The per-score losses ``ℓ`` and the λ-weighted contrastive loss built on them."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from nslightning.losses._checks import (
    Pointwise,
    ScalarReduction,
    TotalReduction,
    check_options,
    check_shapes,
    pair_total,
    reduce_pairs,
)


def pointwise_loss(
    scores: Tensor, target: float, loss: Pointwise = "logistic", margin: float = 1.0
) -> Tensor:
    """The per-score loss ``ℓ(s, y)`` for a label ``y = ±1``, elementwise.

    - ``logistic``: ``log(1 + exp(-y s))``, computed with ``softplus`` (finite for any score);
    - ``hinge``: ``max(0, margin - y s)``;
    - ``squared``: ``(s - y)^2``, which equals ``(1 - y s)^2``.

    Args:
        scores: ``(*)`` scores.
        target: ``+1.0`` for positives, ``-1.0`` for negatives.
        loss: ``"logistic"``, ``"hinge"`` or ``"squared"``.
        margin: the hinge's margin (ignored by the others).

    Returns:
        ``(*)`` losses.

    Examples:
        >>> import torch
        >>> from nslightning.losses import pointwise_loss
        >>> scores = torch.tensor([2.0, -0.5])
        >>> [round(v, 4) for v in pointwise_loss(scores, 1.0).tolist()]
        [0.1269, 0.9741]
        >>> pointwise_loss(scores, -1.0, "hinge", margin=1.0).tolist()
        [3.0, 0.5]
    """
    check_options(loss=loss)
    signed = scores * target
    if loss == "logistic":
        return F.softplus(-signed)
    if loss == "hinge":
        return F.relu(margin - signed)
    return (1.0 - signed).square()  # squared


def weighted_contrastive_loss(
    pos_scores: Tensor,
    neg_scores: Tensor,
    *,
    lam: float = 1.0,
    loss: Pointwise = "logistic",
    margin: float = 1.0,
    neg_mask: Tensor | None = None,
    weights: Tensor | None = None,
    reduction: ScalarReduction = "mean",
    reduce_total: TotalReduction | None = None,
) -> Tensor:
    """The λ-weighted contrastive loss of the project's source documents.

    ::

        L = (1/|S+|) Σ_{i∈S+} ℓ(s_i, +1) + λ (1/|S-|) Σ_{j∈S-} ℓ(s_j, -1)

    ``S+`` holds the positive pairs, ``S-`` the negatives that ``neg_mask`` keeps; each term is
    a mean over its own set, so λ trades the two sides off whatever ``K`` is. With ``weights``
    both means are weighted: pair ``i`` counts ``w_i`` in ``S+`` and each of its kept negatives
    counts ``w_i`` in ``S-`` (all ones give the formula above). A side with nothing in it
    (every negative masked) contributes 0. With ``λ = 0`` the negative term is not computed.

    ``L`` is not a sum over pairs, so ``reduction="sum"`` is defined as ``L`` times the total
    positive weight ``|S+|`` (after ``reduce_total``): the positive term becomes the weighted
    sum ``Σ w_i ℓ(s_i, +1)`` and the negative term keeps its mean over ``S-``, scaled to the
    same count, so that λ keeps its meaning. It equals ``"mean"`` times the pairs' total weight,
    as for the per-pair losses.

    Args:
        pos_scores: ``(*)`` scores of the positive pairs.
        neg_scores: ``(*, K)`` scores of each pair's negatives.
        lam: ``λ >= 0``, the weight of the negative term.
        loss: the per-score loss ``ℓ``, see :func:`pointwise_loss`.
        margin: the hinge's margin.
        neg_mask: ``(*, K)`` bool (broadcastable), ``False`` drops a negative from ``S-``.
        weights: ``(*)`` (broadcastable) non-negative pair weights.
        reduction: ``"mean"`` (the formula above) or ``"sum"`` (``|S+|`` times it).
        reduce_total: maps each side's local total (``|S+|``, ``|S-|``, no gradient) to the one
            to divide by; under DDP the mean of every rank's total
            (:func:`nslightning.distributed.mean_over_ranks`), so that DDP's gradient average
            is the gradient of the loss over the global batch.

    Returns:
        A scalar.

    Examples:
        >>> import torch
        >>> from nslightning.losses import weighted_contrastive_loss
        >>> pos, neg = torch.tensor([2.0, 0.5]), torch.tensor([[0.0, -1.0], [1.0, 3.0]])
        >>> round(float(weighted_contrastive_loss(pos, neg, lam=0.5)), 4)
        0.9715
        >>> round(float(weighted_contrastive_loss(pos, neg, lam=0.5, reduction="sum")), 4)
        1.9431
    """
    if not math.isfinite(lam) or lam < 0:
        raise ValueError(
            f"lam must be a finite number >= 0, got {lam}: λ weights the negative term "
            "(0 trains on positives alone, 1 weighs both sides equally)."
        )
    if reduction not in ("mean", "sum"):
        raise ValueError(
            f"weighted_contrastive_loss: reduction must be 'mean' or 'sum', got {reduction!r} "
            "(the loss is not a sum over pairs, so it has no per-pair 'none')."
        )
    check_shapes(
        "weighted_contrastive_loss", pos_scores, neg_scores, neg_mask=neg_mask, weights=weights
    )
    pos_terms = pointwise_loss(pos_scores, 1.0, loss, margin)
    positive = reduce_pairs(pos_terms, weights, reduction, reduce_total)
    if lam == 0:
        return positive
    neg_weight = torch.ones_like(neg_scores)
    if neg_mask is not None:
        neg_weight = neg_weight * neg_mask
    if weights is not None:
        neg_weight = neg_weight * weights.unsqueeze(-1)
    # where, not a product: a dropped slot's score (even inf/NaN) must not reach the sum, nor
    # its gradient (hence also the where before ℓ: ℓ'(inf) * 0 would be NaN)
    kept = neg_weight > 0
    neg_terms = pointwise_loss(torch.where(kept, neg_scores, 0.0), -1.0, loss, margin)
    neg_terms = torch.where(kept, neg_terms * neg_weight, 0.0)
    neg_total = neg_weight.sum()
    if reduce_total is not None:
        neg_total = reduce_total(neg_total)
    negative = neg_terms.sum() / neg_total.clamp_min(1e-12)
    if reduction == "sum":
        negative = negative * pair_total(pos_terms, weights, reduce_total)
    return positive + lam * negative
