"""Training objectives of a sampled output layer (language models), as pure functions.

Each scores the true next token and ``K`` sampled candidates against a context vector; the
task evaluates every objective with the exact full softmax. The corrections use the *expected
count* of a candidate among the ``K`` draws, ``log(K q)`` for ``K`` independent draws from
``q`` (TensorFlow's ``compute_sampled_logits`` convention), passed in as ``log_count``.

Negative sampling (Mikolov et al. 2013) is :func:`~nslightning.losses.functional.sgns_loss`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from nslightning.losses.functional import Reduction, _check_shapes, _reduce


def sampled_softmax_loss(
    pos_scores: Tensor,
    neg_scores: Tensor,
    neg_log_count: Tensor,
    *,
    pos_log_count: Tensor | None = None,
    neg_mask: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    """Sampled softmax (Jean et al. 2015, "On Using Very Large Target Vocabulary").

    A softmax over the true token and its kept candidates, each logit corrected by the log of
    its expected count among the draws::

        z_t = s_t - log(K q_t)      z_k = s_k - log(K q_k)
        loss = logsumexp([z_t, z_k for kept k]) - z_t

    so that ``Σ_k e^{s_k} / (K q_k)`` estimates the full softmax's normaliser. Accidental hits
    (a candidate equal to the true token) are dropped through ``neg_mask``. Without
    ``pos_log_count`` the true token is left uncorrected (``z_t = s_t``, the importance-sampling
    estimate of Bengio & Senécal 2008).

    Args:
        pos_scores: ``(N)`` scores of the true tokens.
        neg_scores: ``(N, K)`` scores of the candidates.
        neg_log_count: ``(N, K)`` (broadcastable, e.g. ``(1, K)`` for shared candidates)
            ``log(K q_k)``.
        pos_log_count: ``(N)`` ``log(K q_t)`` of the true tokens, or ``None``.
        neg_mask: ``(N, K)`` bool, ``False`` drops a candidate.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
        A scalar, or ``(N)`` with ``reduction="none"``.
    """
    _check_shapes(
        "sampled_softmax_loss", pos_scores, neg_scores, neg_mask=neg_mask, log_q=neg_log_count,
        pos_log_q=pos_log_count, log_q_arg="neg_log_count", pos_log_q_arg="pos_log_count",
    )
    pos_logits = pos_scores if pos_log_count is None else pos_scores - pos_log_count
    neg_logits = neg_scores - neg_log_count
    if neg_mask is not None:
        neg_logits = neg_logits.masked_fill(~neg_mask, float("-inf"))
    logits = torch.cat([pos_logits.unsqueeze(-1), neg_logits], dim=-1)
    return _reduce(torch.logsumexp(logits, dim=-1) - pos_logits, None, reduction)


def nce_loss(
    pos_scores: Tensor,
    neg_scores: Tensor,
    neg_log_count: Tensor,
    pos_log_count: Tensor,
    *,
    neg_mask: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    """Noise-contrastive estimation (Gutmann & Hyvärinen 2010; Mnih & Teh 2012).

    Tells the true token apart from ``K`` noise draws with a logistic classifier whose logit is
    the model's unnormalised log-probability minus the log of the noise's expected count::

        loss = -log σ(s_t - log(K q_t)) - Σ_k log σ(-(s_k - log(K q_k)))

    Its optimum is the true distribution with scores self-normalised (``Σ e^s = 1``), which is
    why noise draws equal to the true token are usually kept (``neg_mask`` drops only what it
    marks ``False``).

    Args:
        pos_scores: ``(N)`` scores of the true tokens.
        neg_scores: ``(N, K)`` scores of the noise draws.
        neg_log_count: ``(N, K)`` (broadcastable) ``log(K q_k)``.
        pos_log_count: ``(N)`` ``log(K q_t)``.
        neg_mask: ``(N, K)`` bool, ``False`` drops a draw.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
        A scalar, or ``(N)`` with ``reduction="none"``.
    """
    _check_shapes(
        "nce_loss", pos_scores, neg_scores, neg_mask=neg_mask, log_q=neg_log_count,
        pos_log_q=pos_log_count, log_q_arg="neg_log_count", pos_log_q_arg="pos_log_count",
    )
    neg_terms = F.logsigmoid(neg_log_count - neg_scores)
    if neg_mask is not None:
        neg_terms = neg_terms.masked_fill(~neg_mask, 0.0)
    per_token = -F.logsigmoid(pos_scores - pos_log_count) - neg_terms.sum(-1)
    return _reduce(per_token, None, reduction)
