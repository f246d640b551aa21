"""Softmax-family contrastive losses: InfoNCE (with the logQ correction), debiased and
hard-negative reweighted."""

from __future__ import annotations

import torch
from torch import Tensor

from nslightning.losses._checks import (
    Reduction,
    TotalReduction,
    check_options,
    check_shapes,
    reduce_pairs,
)


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
    softmax. Here ``K`` counts each row's *kept* negatives, since masking removes draws of an
    in-batch or mined pool; :func:`~nslightning.losses.sampled_output.sampled_softmax_loss`
    counts every draw, ``K = neg_scores.shape[-1]``, as TensorFlow does.

    Args:
        pos_scores: ``(*)`` scores of the positive pairs.
        neg_scores: ``(*, K)`` scores of each pair's negatives.
        temperature: ``τ > 0``; scores are divided by it.
        neg_mask: ``(*, K)`` bool (broadcastable), ``False`` drops a negative.
        log_q: ``(*, K)`` (broadcastable) log of each negative's per-draw probability under the
            sampler, or ``None`` (no correction).
        pos_log_q: ``(*)`` the positive's per-draw log probability (the full sampled softmax of
            Jean et al. corrects the true class too), or ``None``.
        weights: ``(*)`` (broadcastable) non-negative pair weights.
        reduction: ``"mean"`` (weighted), ``"sum"`` or ``"none"``.
        reduce_total: maps the mean's local total weight to the one to divide by (see
            :func:`weighted_contrastive_loss`).

    Returns:
        A scalar, or ``(*)`` with ``reduction="none"``.

    Examples:
        >>> import torch
        >>> from nslightning.losses import info_nce_loss
        >>> pos, neg = torch.tensor([2.0, 0.5]), torch.tensor([[0.0, -1.0], [1.0, 3.0]])
        >>> round(float(info_nce_loss(pos, neg, temperature=0.5)), 4)
        2.5227
        >>> log_q = torch.log(torch.tensor([[0.5, 0.25]]))  # shared by both rows
        >>> round(float(info_nce_loss(pos, neg, log_q=log_q, reduction="sum")), 4)
        3.5073
    """
    check_options(temperature=temperature)
    check_shapes(
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
    return reduce_pairs(per_pair, weights, reduction, reduce_total)


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
        log_q: ``(*, K)`` (broadcastable) log of each negative's per-draw probability under the
            sampler, or ``None``; only its differences within a row matter.
        weights: ``(*)`` (broadcastable) non-negative pair weights.
        reduction: ``"mean"`` (weighted), ``"sum"`` or ``"none"``.
        reduce_total: maps the mean's local total weight to the one to divide by (see
            :func:`weighted_contrastive_loss`).

    Returns:
        A scalar, or ``(*)`` with ``reduction="none"``.

    Examples:
        >>> import torch
        >>> from nslightning.losses import debiased_contrastive_loss
        >>> pos, neg = torch.tensor([0.9, 0.2]), torch.tensor([[0.1, -0.3], [0.4, 0.8]])
        >>> round(float(debiased_contrastive_loss(pos, neg, tau_plus=0.1)), 4)
        0.9551
        >>> round(float(debiased_contrastive_loss(pos, neg, tau_plus=0.1, beta=1.0)), 4)
        1.0353
    """
    check_options(temperature=temperature, tau_plus=tau_plus, beta=beta)
    check_shapes(
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
    return reduce_pairs(per_pair, weights, reduction, reduce_total)
