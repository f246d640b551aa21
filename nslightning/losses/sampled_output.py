"""The objectives of a sampled output layer (language models) as losses: sampled softmax and
NCE; their pure functions are in :mod:`nslightning.losses.functional.sampled_output`.

Negative sampling (Mikolov et al. 2013) is :class:`~nslightning.losses.SGNSLoss`.
"""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor

from nslightning.losses.base import NegativeSamplingLoss
from nslightning.losses.functional.sampled_output import nce_loss, sampled_softmax_loss

__all__ = ["NCELoss", "SampledSoftmaxLoss", "nce_loss", "sampled_softmax_loss"]


class SampledSoftmaxLoss(NegativeSamplingLoss):
    """Sampled softmax (Jean et al. 2015): a softmax over the positive and its kept negatives,
    each logit corrected by ``log(K q)``; see
    :func:`~nslightning.losses.functional.sampled_softmax_loss`.

    ``K`` is the number of draws, ``neg_scores.shape[-1]``, whatever the mask drops
    (TensorFlow's convention for independent draws), unlike
    :class:`~nslightning.losses.InfoNCELoss`'s correction, which counts the kept negatives of
    each row. The positive is corrected too when ``pos_log_q`` is given. ``uses_log_q``:
    ``log_q`` is required.

    Args:
        reduction: ``"mean"`` (weighted mean over pairs) or ``"sum"`` (weighted sum).

    Shape:
        - pos_scores: ``(*)``
        - neg_scores: ``(*, K)``
        - neg_mask: ``(*, K)`` bool (broadcastable) or ``None``; ``False`` drops an accidental hit
        - log_q: ``(*, K)`` (broadcastable, ``(1, K)`` for shared candidates), required
        - weights: ``(*)`` (broadcastable) or ``None``
        - pos_log_q: ``(*)`` or ``None``
        - output: scalar
    """

    uses_log_q: ClassVar[bool] = True

    def forward(
        self,
        pos_scores: Tensor,
        neg_scores: Tensor,
        *,
        neg_mask: Tensor | None = None,
        log_q: Tensor | None = None,
        weights: Tensor | None = None,
        pos_log_q: Tensor | None = None,
    ) -> Tensor:
        return sampled_softmax_loss(
            pos_scores, neg_scores, log_q=_required(self, "log_q", log_q), pos_log_q=pos_log_q,
            neg_mask=neg_mask, weights=weights, reduction=self.reduction,
            reduce_total=self.reduce_total,
        )


class NCELoss(NegativeSamplingLoss):
    """Noise-contrastive estimation (Gutmann & Hyvärinen 2010; Mnih & Teh 2012): a logistic
    classifier of the positive against ``K`` noise draws with logits ``s - log(K q)``; see
    :func:`~nslightning.losses.functional.nce_loss`.

    ``needs_fixed_distribution``: the logits assume draws from one fixed noise distribution
    ``q``, and the positive's ``pos_log_q`` is required. ``keeps_accidental_hits``: its
    derivation keeps noise draws equal to the true token. ``uses_log_q``: ``log_q`` is
    required.

    Args:
        reduction: ``"mean"`` (weighted mean over pairs) or ``"sum"`` (weighted sum).

    Shape:
        - pos_scores: ``(*)``
        - neg_scores: ``(*, K)``
        - neg_mask: ``(*, K)`` bool (broadcastable) or ``None``
        - log_q: ``(*, K)`` (broadcastable), required
        - weights: ``(*)`` (broadcastable) or ``None``
        - pos_log_q: ``(*)``, required
        - output: scalar
    """

    uses_log_q: ClassVar[bool] = True
    needs_fixed_distribution: ClassVar[bool] = True
    keeps_accidental_hits: ClassVar[bool] = True
    pointwise: ClassVar[bool] = True

    def forward(
        self,
        pos_scores: Tensor,
        neg_scores: Tensor,
        *,
        neg_mask: Tensor | None = None,
        log_q: Tensor | None = None,
        weights: Tensor | None = None,
        pos_log_q: Tensor | None = None,
    ) -> Tensor:
        return nce_loss(
            pos_scores, neg_scores, log_q=_required(self, "log_q", log_q),
            pos_log_q=_required(self, "pos_log_q", pos_log_q), neg_mask=neg_mask,
            weights=weights, reduction=self.reduction, reduce_total=self.reduce_total,
        )


def _required(loss: NegativeSamplingLoss, name: str, value: Tensor | None) -> Tensor:
    """``value``, or a ``ValueError`` saying which sampler the loss needs."""
    if value is None:
        what = "the positive's" if name == "pos_log_q" else "each negative's"
        raise ValueError(
            f"{type(loss).__name__} needs {name}, {what} per-draw log probability under the "
            "sampler; use a sampler that draws from a known distribution (a table sampler such "
            "as UnigramSampler or LogUniformSampler"
            + (", whose log_prob gives the positive's" if name == "pos_log_q" else "")
            + ")."
        )
    return value
