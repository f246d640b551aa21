"""Pure loss functions. Shapes broadcast over any leading dimensions ``*``.

Every loss takes the scores of positive pairs ``(*)`` and of their negatives ``(*, K)``, with an
optional ``neg_mask`` (``False`` drops a negative: an accidental hit or an empty slot), optional
``log_q`` (the sampler's log probability of each negative) and optional per-pair ``weights``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor

Reduction = Literal["mean", "sum", "none"]
Pointwise = Literal["logistic", "hinge", "squared"]
TotalReduction = Callable[[Tensor], Tensor]  # a local normalizer -> the one to divide by


def sgns_loss(
    pos_scores: Tensor,
    neg_scores: Tensor,
    neg_mask: Tensor | None = None,
    *,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
    lam: float = 1.0,
) -> Tensor:
    """Skip-gram negative-sampling loss (Mikolov et al. 2013), numerically stable.

    For one positive pair with score ``s`` and negatives with scores ``n_k``::

        loss = -log σ(s) - λ Σ_k log σ(-n_k)

    computed with ``logsigmoid`` so that extreme scores give finite values and gradients.

    Args:
        pos_scores: ``(*)`` scores of the positive pairs.
        neg_scores: ``(*, K)`` scores of the negatives of each pair.
        neg_mask: ``(*, K)`` bool (broadcastable), ``False`` drops a negative (accidental hit).
        weight: ``(*)`` (broadcastable) per-pair weights; ``0`` drops a padded pair.
        reduction: ``"none"`` returns ``(*)``; ``"sum"`` the weighted sum; ``"mean"`` the weighted
            sum divided by the total weight (the number of pairs when ``weight`` is ``None``).
        lam: weight ``λ >= 0`` of the negatives' terms, as in the weighted contrastive loss;
            ``1`` is SGNS.

    Returns:
        The loss, a scalar unless ``reduction="none"``.
    """
    _check_shapes(
        "sgns_loss", pos_scores, neg_scores, neg_mask=neg_mask, weights=weight, weights_arg="weight"
    )
    if not lam >= 0:
        raise ValueError(f"sgns_loss: lam (λ) must be >= 0, got {lam}; 1 is SGNS.")
    neg_terms = F.logsigmoid(-neg_scores)
    if neg_mask is not None:
        neg_terms = neg_terms * neg_mask
    per_pair = -F.logsigmoid(pos_scores) - lam * neg_terms.sum(-1)
    return _reduce(per_pair, weight, reduction)


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

    Args:
        pos_scores: ``(*)`` scores of the positive pairs.
        neg_scores: ``(*, K)`` scores of each pair's negatives.
        lam: ``λ >= 0``, the weight of the negative term.
        loss: the per-score loss ``ℓ``, see :func:`pointwise_loss`.
        margin: the hinge's margin.
        neg_mask: ``(*, K)`` bool (broadcastable), ``False`` drops a negative from ``S-``.
        weights: ``(*)`` (broadcastable) non-negative pair weights.
        reduce_total: maps each side's local total (``|S+|``, ``|S-|``, no gradient) to the one
            to divide by; under DDP the mean of every rank's total
            (:func:`nslightning.distributed.mean_over_ranks`), so that DDP's gradient average
            is the gradient of the loss over the global batch.

    Returns:
        A scalar.
    """
    if not math.isfinite(lam) or lam < 0:
        raise ValueError(
            f"lam must be a finite number >= 0, got {lam}: λ weights the negative term "
            "(0 trains on positives alone, 1 weighs both sides equally)."
        )
    _check_shapes(
        "weighted_contrastive_loss", pos_scores, neg_scores, neg_mask=neg_mask, weights=weights
    )
    positive = _reduce(
        pointwise_loss(pos_scores, 1.0, loss, margin), weights, "mean", reduce_total
    )
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
    return positive + lam * negative


def info_nce_loss(
    pos_scores: Tensor,
    neg_scores: Tensor,
    *,
    temperature: float = 1.0,
    neg_mask: Tensor | None = None,
    log_q: Tensor | None = None,
    pos_log_q: Tensor | None = None,
    weights: Tensor | None = None,
    reduction: Reduction = "mean",
    reduce_total: TotalReduction | None = None,
) -> Tensor:
    """InfoNCE (van den Oord et al. 2018); with ``log_q``, sampled softmax (Jean et al. 2015).

    Each positive competes with its kept negatives in a softmax over
    ``[s+/τ - log q+, s_k/τ - log q_k]``::

        loss = -log( e^{s+/τ} / (e^{s+/τ} + Σ_k e^{s_k/τ}) )        (no log_q)

    The logQ correction subtracts ``log(K q)``, the log of each candidate's expected count
    among the row's ``K`` kept draws (as TensorFlow's sampled losses do): then
    ``Σ_k e^{s_k}/(K q_k)`` estimates the full softmax's ``Σ_{all} e^{s}`` without bias, so the
    sampled loss estimates the full softmax over all items whatever the sampler's proposal
    ``q`` (Bengio & Senécal 2008; Yi et al. 2019 for in-batch negatives). With ``pos_log_q``
    the positive is corrected the same way (Jean et al. 2015). Masked negatives leave the
    softmax.

    Args:
        pos_scores: ``(*)`` scores of the positive pairs.
        neg_scores: ``(*, K)`` scores of each pair's negatives.
        temperature: ``τ > 0``; scores are divided by it.
        neg_mask: ``(*, K)`` bool (broadcastable), ``False`` drops a negative.
        log_q: ``(*, K)`` log probability of each negative under the sampler, or ``None``.
        pos_log_q: ``(*)`` log probability of the positive under the sampler (the full sampled
            softmax of Jean et al. corrects the true class too), or ``None``.
        weights: ``(*)`` (broadcastable) non-negative pair weights.
        reduction: ``"mean"`` (weighted), ``"sum"`` or ``"none"``.
        reduce_total: maps the mean's local total weight to the one to divide by (see
            :func:`weighted_contrastive_loss`).

    Returns:
        A scalar, or ``(*)`` with ``reduction="none"``.
    """
    check_options(temperature=temperature)
    _check_shapes(
        "info_nce_loss", pos_scores, neg_scores, neg_mask=neg_mask, weights=weights, log_q=log_q,
        pos_log_q=pos_log_q,
    )
    pos_logits = pos_scores / temperature
    neg_logits = neg_scores / temperature
    if log_q is not None:
        # expected count of each negative among the row's K draws: K q (TensorFlow's convention)
        kept = neg_scores.shape[-1] if neg_mask is None else neg_mask.expand_as(neg_scores).sum(-1)
        log_count = torch.log(torch.as_tensor(kept, dtype=neg_logits.dtype).clamp_min(1.0))
        neg_logits = neg_logits - (log_q + log_count.unsqueeze(-1))
        if pos_log_q is not None:
            pos_logits = pos_logits - (pos_log_q + log_count)
    elif pos_log_q is not None:
        raise ValueError("info_nce_loss: pos_log_q needs log_q (the negatives' log q) too.")
    if neg_mask is not None:
        neg_logits = neg_logits.masked_fill(~neg_mask, float("-inf"))
    logits = torch.cat([pos_logits.unsqueeze(-1), neg_logits], dim=-1)
    per_pair = torch.logsumexp(logits, dim=-1) - pos_logits
    return _reduce(per_pair, weights, reduction, reduce_total)


def debiased_contrastive_loss(
    pos_scores: Tensor,
    neg_scores: Tensor,
    *,
    temperature: float = 0.5,
    tau_plus: float = 0.1,
    beta: float = 0.0,
    min_score: float = -1.0,
    neg_mask: Tensor | None = None,
    log_q: Tensor | None = None,
    weights: Tensor | None = None,
    reduction: Reduction = "mean",
    reduce_total: TotalReduction | None = None,
) -> Tensor:
    """Debiased contrastive loss (Chuang et al. 2020), with hard-negative reweighting (β,
    Robinson et al. 2021).

    Some "negatives" drawn from the data are in fact positives (a share ``τ+`` of them). With
    ``a = s+/τ``, ``b_k = s_k/τ`` and ``N`` kept negatives, the negative mass is estimated as::

        g = max( (Σ_k w_k e^{b_k} - τ+ e^{a}) / (1 - τ+),  e^{min_score/τ} )
        loss = -log( e^{a} / (e^{a} + N g) )

    where ``w = softmax(β b_k - log q_k)`` over the kept negatives: uniform for ``β = 0``
    without ``log_q`` (the debiased loss), tilted towards high-scoring negatives for ``β > 0``
    (hard-negative reweighting), and importance-weighted towards a uniform draw when ``log_q``
    is given. ``τ+ = 0, β = 0`` is :func:`info_nce_loss`. ``min_score`` is the lowest score a
    negative can have (``-1`` for cosine scores, as in both papers); the clamp keeps ``g``
    positive. A row without kept negatives has loss 0. Computed in log space: finite for any
    score.

    Args:
        pos_scores: ``(*)`` scores of the positive pairs.
        neg_scores: ``(*, K)`` scores of each pair's negatives.
        temperature: ``τ > 0``.
        tau_plus: ``τ+ ∈ [0, 1)``, the class prior: the probability that a negative is a
            positive in disguise.
        beta: ``β >= 0``, the concentration on hard negatives.
        min_score: the score floor of the clamp.
        neg_mask: ``(*, K)`` bool (broadcastable), ``False`` drops a negative.
        log_q: ``(*, K)`` log probability of each negative under the sampler, or ``None``.
        weights: ``(*)`` (broadcastable) non-negative pair weights.
        reduction: ``"mean"`` (weighted), ``"sum"`` or ``"none"``.
        reduce_total: maps the mean's local total weight to the one to divide by (see
            :func:`weighted_contrastive_loss`).

    Returns:
        A scalar, or ``(*)`` with ``reduction="none"``.
    """
    check_options(temperature=temperature, tau_plus=tau_plus, beta=beta)
    _check_shapes(
        "debiased_contrastive_loss", pos_scores, neg_scores, neg_mask=neg_mask, weights=weights,
        log_q=log_q,
    )
    a = pos_scores / temperature
    b = neg_scores / temperature
    tilt = beta * b
    if log_q is not None:
        tilt = tilt - log_q
    # A finite fill (not -inf) keeps the gradient of rows with no kept negative finite.
    fill = torch.finfo(b.dtype).min / 4
    kept = torch.ones_like(b, dtype=torch.bool) if neg_mask is None else neg_mask.expand_as(b)
    tilt = tilt.masked_fill(~kept, fill)
    count = kept.sum(-1)
    # log Σ_k w_k e^{b_k} = logsumexp(tilt + b) - logsumexp(tilt)
    log_mass = torch.logsumexp((tilt + b).masked_fill(~kept, fill), -1) - torch.logsumexp(tilt, -1)
    log_mass = torch.where(count > 0, log_mass, a.detach())
    top = torch.maximum(log_mass, a)
    spread = (torch.exp(log_mass - top) - tau_plus * torch.exp(a - top)) / (1.0 - tau_plus)
    tiny = torch.finfo(b.dtype).tiny
    log_g = (top + torch.log(spread.clamp_min(tiny))).clamp_min(min_score / temperature)
    log_total = torch.log(count.to(b.dtype)) + log_g  # -inf when no negative is kept
    per_pair = torch.logaddexp(a, log_total) - a
    return _reduce(per_pair, weights, reduction, reduce_total)


def check_options(
    *,
    loss: str | None = None,
    temperature: float | None = None,
    tau_plus: float | None = None,
    beta: float | None = None,
) -> None:
    """Raises ``ValueError`` for a hyperparameter out of its range; the functions check their
    arguments with it, the modules their constructor's."""
    if loss is not None and loss not in get_args(Pointwise):
        raise ValueError(f"loss must be 'logistic', 'hinge' or 'squared', got {loss!r}.")
    if temperature is not None and (not math.isfinite(temperature) or temperature <= 0):
        raise ValueError(
            f"temperature must be a finite number > 0, got {temperature}; 0.05-1 is usual."
        )
    if tau_plus is not None and not 0 <= tau_plus < 1:
        raise ValueError(f"tau_plus must be in [0, 1), got {tau_plus}: it is a probability.")
    if beta is not None and (not math.isfinite(beta) or beta < 0):
        raise ValueError(f"beta must be a finite number >= 0, got {beta}; 0 turns it off.")


def _check_shapes(
    name: str,
    pos_scores: Tensor,
    neg_scores: Tensor,
    *,
    neg_mask: Tensor | None = None,
    weights: Tensor | None = None,
    log_q: Tensor | None = None,
    pos_log_q: Tensor | None = None,
    weights_arg: str = "weights",
    log_q_arg: str = "log_q",
    pos_log_q_arg: str = "pos_log_q",
) -> None:
    """Raises ``ValueError`` naming the argument whose shape does not fit the scores (``*_arg``
    give the caller's names for them)."""
    if neg_scores.dim() == 0 or neg_scores.shape[:-1] != pos_scores.shape:
        raise ValueError(
            f"{name}: neg_scores must be pos_scores' shape plus K, got {tuple(pos_scores.shape)}"
            f" and {tuple(neg_scores.shape)}."
        )
    for arg, value, target in (
        ("neg_mask", neg_mask, neg_scores.shape),
        (log_q_arg, log_q, neg_scores.shape),
        (weights_arg, weights, pos_scores.shape),
        (pos_log_q_arg, pos_log_q, pos_scores.shape),
    ):
        if value is not None and _broadcast_shape(value.shape, target) != target:
            raise ValueError(
                f"{name}: {arg} of shape {tuple(value.shape)} does not broadcast to "
                f"{tuple(target)}; give it the shape of the scores it goes with (or a "
                "broadcastable one such as (B, 1, K) against (B, C, K))."
            )


def _reduce(
    per_pair: Tensor,
    weight: Tensor | None,
    reduction: Reduction,
    reduce_total: TotalReduction | None = None,
) -> Tensor:
    """Applies pair weights and the reduction (the weighted mean divides by the total weight,
    passed through ``reduce_total`` first when given)."""
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
        if reduce_total is not None:
            total = reduce_total(total)
        return per_pair.sum() / total.clamp_min(1e-12)
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}.")


def _broadcast_shape(shape: torch.Size, target: torch.Size) -> torch.Size | None:
    """The broadcast of ``shape`` with ``target``, or ``None`` if they do not broadcast."""
    try:
        return torch.broadcast_shapes(shape, target)
    except RuntimeError:
        return None
