"""Training objectives of a sampled output layer (language models): sampled softmax and NCE.

Each scores the true next token and ``K`` sampled candidates against a context vector; the
task evaluates every objective with the exact full softmax. Both take the per-draw log
probabilities ``log q`` of the sampler and correct with the *expected count* of a candidate
among the ``K`` draws, ``log(K q)`` with ``K = neg_scores.shape[-1]`` independent draws
(TensorFlow's ``compute_sampled_logits`` convention).

Negative sampling (Mikolov et al. 2013) is :func:`~nslightning.losses.functional.sgns_loss`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from nslightning.losses._checks import (
    Reduction,
    TotalReduction,
    check_shapes,
    drop_masked,
    reduce_pairs,
)


def sampled_softmax_loss(
    pos_scores: Tensor,
    neg_scores: Tensor,
    *,
    log_q: Tensor,
    pos_log_q: Tensor | None = None,
    neg_mask: Tensor | None = None,
    weights: Tensor | None = None,
    reduction: Reduction = "mean",
    reduce_total: TotalReduction | None = None,
) -> Tensor:
    """Sampled softmax (Jean et al. 2015, "On Using Very Large Target Vocabulary").

    A softmax over the true token and its kept candidates, each logit corrected by the log of
    its expected count among the ``K`` draws::

        z_t = s_t - log(K q_t)      z_k = s_k - log(K q_k)
        loss = logsumexp([z_t, z_k for kept k]) - z_t

    so that ``Σ_k e^{s_k} / (K q_k)`` estimates the full softmax's normaliser. ``K`` is the
    number of draws, ``neg_scores.shape[-1]``, whatever the mask drops (TensorFlow's
    convention), unlike :func:`~nslightning.losses.functional.info_nce_loss`, which counts the
    kept negatives of each row. Accidental hits (a candidate equal to the true token) are
    dropped through ``neg_mask``. Without ``pos_log_q`` the true token is left uncorrected
    (``z_t = s_t``, the importance-sampling estimate of Bengio & Senécal 2008).

    Args:
        pos_scores: ``(*)`` scores of the true tokens.
        neg_scores: ``(*, K)`` scores of the candidates.
        log_q: ``(*, K)`` (broadcastable, e.g. ``(1, K)`` for shared candidates) log of each
            candidate's per-draw probability under the sampler.
        pos_log_q: ``(*)`` the true tokens' per-draw log probability, or ``None``.
        neg_mask: ``(*, K)`` bool (broadcastable), ``False`` drops a candidate.
        weights: ``(*)`` (broadcastable) non-negative token weights.
        reduction: ``"mean"`` (weighted), ``"sum"`` or ``"none"``.
        reduce_total: maps the mean's local total weight to the one to divide by (see
            :func:`~nslightning.losses.functional.weighted_contrastive_loss`).

    Returns:
        A scalar, or ``(*)`` with ``reduction="none"``.

    Examples:
        >>> import math, torch
        >>> from nslightning.losses import sampled_softmax_loss
        >>> pos, neg = torch.tensor([2.0, 0.5]), torch.tensor([[0.0, -1.0], [1.0, 3.0]])
        >>> log_q = torch.full((1, 2), math.log(0.1))  # two draws of probability 0.1 each
        >>> round(float(sampled_softmax_loss(pos, neg, log_q=log_q)), 4)
        2.453
        >>> pos_log_q = torch.full((2,), math.log(0.3))
        >>> round(float(sampled_softmax_loss(pos, neg, log_q=log_q, pos_log_q=pos_log_q)), 4)
        2.0955
    """
    check_shapes(
        "sampled_softmax_loss", pos_scores, neg_scores, neg_mask=neg_mask, log_q=log_q,
        pos_log_q=pos_log_q, weights=weights,
    )
    log_draws = math.log(max(neg_scores.shape[-1], 1))
    pos_logits = pos_scores if pos_log_q is None else pos_scores - (pos_log_q + log_draws)
    neg_logits = neg_scores - (log_q + log_draws)
    if neg_mask is not None:
        neg_logits = neg_logits.masked_fill(~neg_mask, float("-inf"))
    logits = torch.cat([pos_logits.unsqueeze(-1), neg_logits], dim=-1)
    per_token = torch.logsumexp(logits, dim=-1) - pos_logits
    return reduce_pairs(per_token, weights, reduction, reduce_total)


def nce_loss(
    pos_scores: Tensor,
    neg_scores: Tensor,
    *,
    log_q: Tensor,
    pos_log_q: Tensor,
    neg_mask: Tensor | None = None,
    weights: Tensor | None = None,
    reduction: Reduction = "mean",
    reduce_total: TotalReduction | None = None,
) -> Tensor:
    """Noise-contrastive estimation (Gutmann & Hyvärinen 2010; Mnih & Teh 2012).

    Tells the true token apart from ``K`` noise draws with a logistic classifier whose logit is
    the model's unnormalised log-probability minus the log of the noise's expected count::

        loss = -log σ(s_t - log(K q_t)) - Σ_k log σ(-(s_k - log(K q_k)))

    with ``K = neg_scores.shape[-1]`` draws from one fixed noise distribution ``q``. Its
    optimum is the true distribution with scores self-normalised (``Σ e^s = 1``), which is why
    noise draws equal to the true token are kept (``neg_mask`` drops only what it marks
    ``False``).

    Args:
        pos_scores: ``(*)`` scores of the true tokens.
        neg_scores: ``(*, K)`` scores of the noise draws.
        log_q: ``(*, K)`` (broadcastable) log of each draw's per-draw noise probability.
        pos_log_q: ``(*)`` the true tokens' per-draw noise log probability.
        neg_mask: ``(*, K)`` bool (broadcastable), ``False`` drops a draw.
        weights: ``(*)`` (broadcastable) non-negative token weights.
        reduction: ``"mean"`` (weighted), ``"sum"`` or ``"none"``.
        reduce_total: maps the mean's local total weight to the one to divide by (see
            :func:`~nslightning.losses.functional.weighted_contrastive_loss`).

    Returns:
        A scalar, or ``(*)`` with ``reduction="none"``.

    Examples:
        >>> import math, torch
        >>> from nslightning.losses import nce_loss
        >>> pos, neg = torch.tensor([2.0, 0.5]), torch.tensor([[0.0, -1.0], [1.0, 3.0]])
        >>> log_q = torch.full((1, 2), math.log(0.1))
        >>> pos_log_q = torch.full((2,), math.log(0.3))
        >>> round(float(nce_loss(pos, neg, log_q=log_q, pos_log_q=pos_log_q)), 4)
        5.2618
    """
    check_shapes(
        "nce_loss", pos_scores, neg_scores, neg_mask=neg_mask, log_q=log_q, pos_log_q=pos_log_q,
        weights=weights,
    )
    log_draws = math.log(max(neg_scores.shape[-1], 1))
    # the dropped slots' logits are set before logsigmoid: what they held reaches no gradient
    neg_terms = F.logsigmoid(drop_masked((log_q + log_draws) - neg_scores, neg_mask))
    if neg_mask is not None:
        neg_terms = neg_terms.masked_fill(~neg_mask, 0.0)
    per_token = -F.logsigmoid(pos_scores - (pos_log_q + log_draws)) - neg_terms.sum(-1)
    return reduce_pairs(per_token, weights, reduction, reduce_total)
