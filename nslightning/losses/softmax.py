"""Softmax-family contrastive losses: InfoNCE / sampled softmax, debiased and hard-negative."""

from __future__ import annotations

import warnings

from torch import Tensor

from nslightning.losses._checks import ScalarReduction, check_options
from nslightning.losses.base import NegativeSamplingLoss
from nslightning.losses.functional.softmax import debiased_contrastive_loss, info_nce_loss


class InfoNCELoss(NegativeSamplingLoss):
    """InfoNCE with a temperature; with ``correct_log_q``, the logQ-corrected sampled softmax.

    See :func:`~nslightning.losses.functional.info_nce_loss`. The correction counts each row's
    *kept* negatives, ``log(K' q)``, since masking removes draws of an in-batch or mined pool;
    :class:`~nslightning.losses.SampledSoftmaxLoss` counts every draw, as TensorFlow does.
    ``uses_log_q`` is ``correct_log_q``. Only the negatives are corrected (Yi et al. 2019):
    ``pos_log_q`` is ignored, so a task gives the same loss whichever sampler drew; the
    correction of the positive too (Jean et al. 2015) is ``SampledSoftmaxLoss``'s.

    Args:
        temperature: ``τ > 0``.
        correct_log_q: subtract each negative's ``log(K' q)`` (needs a sampler that gives
            ``log_q``; hard negatives do not).
        reduction: ``"mean"`` (weighted mean over pairs) or ``"sum"`` (weighted sum).

    Shape:
        - pos_scores: ``(*)``
        - neg_scores: ``(*, K)``
        - neg_mask: ``(*, K)`` bool (broadcastable) or ``None``
        - log_q: ``(*, K)`` (broadcastable) or ``None``; read only with ``correct_log_q``
        - weights: ``(*)`` (broadcastable) or ``None``
        - pos_log_q: ``(*)`` or ``None``; ignored
        - output: scalar
    """

    def __init__(
        self,
        temperature: float = 1.0,
        correct_log_q: bool = False,
        reduction: ScalarReduction = "mean",
    ) -> None:
        super().__init__(reduction)
        check_options(temperature=temperature)
        self.temperature = temperature
        self.correct_log_q = correct_log_q

    @property
    def uses_log_q(self) -> bool:
        return self.correct_log_q

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
        return info_nce_loss(
            pos_scores, neg_scores, temperature=self.temperature, neg_mask=neg_mask,
            log_q=_needed_log_q(self.correct_log_q, log_q), weights=weights,
            reduction=self.reduction, reduce_total=self.reduce_total,
        )

    def extra_repr(self) -> str:
        return (
            f"temperature={self.temperature}, correct_log_q={self.correct_log_q}, "
            f"{super().extra_repr()}"
        )


class DebiasedContrastiveLoss(NegativeSamplingLoss):
    """Debiased contrastive loss (Chuang et al. 2020, "Debiased Contrastive Learning").

    See :func:`~nslightning.losses.functional.debiased_contrastive_loss` (``beta = 0``).
    ``uses_log_q`` is ``correct_log_q``; ``pos_log_q`` is ignored.

    Args:
        temperature: ``τ > 0``.
        tau_plus: ``τ+ ∈ [0, 1)``, the probability that a drawn negative is a positive.
        min_score: lowest possible score (``-1`` for cosine) that bounds the negative mass.
        correct_log_q: importance-weight the negatives towards a uniform draw with ``log q``.
        reduction: ``"mean"`` (weighted mean over pairs) or ``"sum"`` (weighted sum).

    Shape:
        - pos_scores: ``(*)``
        - neg_scores: ``(*, K)``
        - neg_mask: ``(*, K)`` bool (broadcastable) or ``None``
        - log_q: ``(*, K)`` (broadcastable) or ``None``; read only with ``correct_log_q``
        - weights: ``(*)`` (broadcastable) or ``None``
        - output: scalar
    """

    def __init__(
        self,
        temperature: float = 0.5,
        tau_plus: float = 0.1,
        min_score: float = -1.0,
        correct_log_q: bool = False,
        reduction: ScalarReduction = "mean",
    ) -> None:
        super().__init__(reduction)
        self.temperature = temperature
        self.tau_plus = tau_plus
        self.min_score = min_score
        self.correct_log_q = correct_log_q
        self.beta = 0.0
        check_options(temperature=temperature, tau_plus=tau_plus)

    @property
    def uses_log_q(self) -> bool:
        return self.correct_log_q

    def check_score(self, score: str) -> None:
        """Warns when ``min_score`` is cosine's ``-1`` but the task's score is not cosine: the
        scores then fall below the bound, which takes over (no gradient from the negatives)."""
        if self.min_score == -1.0 and score != "cosine":
            warnings.warn(
                f"{type(self).__name__} bounds the negative mass with min_score=-1, the "
                f"lowest cosine score; with score={score!r} scores fall below -1 and the "
                "bound takes over (no gradient from the negatives). Use --model.score cosine "
                "or set the loss's min_score to your scores' lower bound.",
                stacklevel=3,
            )

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
        return debiased_contrastive_loss(
            pos_scores, neg_scores, temperature=self.temperature, tau_plus=self.tau_plus,
            beta=self.beta, min_score=self.min_score, neg_mask=neg_mask,
            log_q=_needed_log_q(self.correct_log_q, log_q), weights=weights,
            reduction=self.reduction, reduce_total=self.reduce_total,
        )

    def extra_repr(self) -> str:
        return (
            f"temperature={self.temperature}, tau_plus={self.tau_plus}, beta={self.beta}, "
            f"min_score={self.min_score}, correct_log_q={self.correct_log_q}, "
            f"{super().extra_repr()}"
        )


class HardNegativeContrastiveLoss(DebiasedContrastiveLoss):
    """Hard-negative reweighting (Robinson et al. 2021, "Contrastive Learning with Hard
    Negative Samples"): the debiased loss with negatives weighted by ``e^{β s/τ}``.

    See :func:`~nslightning.losses.functional.debiased_contrastive_loss`.

    Args:
        temperature: ``τ > 0``.
        tau_plus: ``τ+ ∈ [0, 1)``; 0 gives plain hard-negative reweighting.
        beta: ``β >= 0``, the concentration on hard negatives.
        min_score: lowest possible score (``-1`` for cosine) that bounds the negative mass.
        correct_log_q: importance-weight the negatives towards a uniform draw with ``log q``.
        reduction: ``"mean"`` (weighted mean over pairs) or ``"sum"`` (weighted sum).

    Shape:
        - pos_scores: ``(*)``
        - neg_scores: ``(*, K)``
        - neg_mask: ``(*, K)`` bool (broadcastable) or ``None``
        - log_q: ``(*, K)`` (broadcastable) or ``None``; read only with ``correct_log_q``
        - weights: ``(*)`` (broadcastable) or ``None``
        - output: scalar
    """

    def __init__(
        self,
        temperature: float = 0.5,
        tau_plus: float = 0.1,
        beta: float = 1.0,
        min_score: float = -1.0,
        correct_log_q: bool = False,
        reduction: ScalarReduction = "mean",
    ) -> None:
        super().__init__(temperature, tau_plus, min_score, correct_log_q, reduction)
        check_options(beta=beta)
        self.beta = beta


def _needed_log_q(correct: bool, log_q: Tensor | None) -> Tensor | None:
    """``log_q`` when the correction is on; a clear error when the sampler gave none."""
    if not correct:
        return None
    if log_q is None:
        raise ValueError(
            "correct_log_q=True but the sampler gives no log_q (hard negatives are chosen by "
            "score, not drawn from a known distribution): set correct_log_q false or use a "
            "sampler that draws from a distribution."
        )
    return log_q
