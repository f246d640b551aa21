"""Module wrapper around :func:`nslightning.losses.functional.sgns_loss`."""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor

from nslightning.losses._checks import ScalarReduction
from nslightning.losses.base import NegativeSamplingLoss
from nslightning.losses.functional.sgns import sgns_loss


class SGNSLoss(NegativeSamplingLoss):
    """Skip-gram negative-sampling loss (Mikolov et al. 2013), ``-log σ(s) - λ Σ_k log σ(-n_k)``
    per pair; see :func:`~nslightning.losses.functional.sgns_loss`.

    ``fused_form = "sgns"``: the fused skip-gram kernel implements this loss. ``log_q`` and
    ``pos_log_q`` are ignored.

    Args:
        lam: weight ``λ >= 0`` of the negatives' terms; ``1`` is SGNS.
        reduction: ``"mean"`` (weighted mean over pairs) or ``"sum"`` (weighted sum; exactly
            ``sgns_loss(..., reduction="sum")``).

    Shape:
        - pos_scores: ``(*)``
        - neg_scores: ``(*, K)``
        - neg_mask: ``(*, K)`` bool (broadcastable) or ``None``
        - weights: ``(*)`` (broadcastable) or ``None``
        - output: scalar
    """

    fused_form: ClassVar[str | None] = "sgns"
    pointwise: ClassVar[bool] = True

    def __init__(self, lam: float = 1.0, reduction: ScalarReduction = "mean") -> None:
        if isinstance(lam, str):
            raise TypeError(
                f"SGNSLoss: the first argument is lam now, got {lam!r}; pass "
                f"reduction={lam!r} by keyword."
            )
        super().__init__(reduction)
        if not lam >= 0:
            raise ValueError(f"SGNSLoss: lam (λ) must be >= 0, got {lam}; 1 is SGNS.")
        self.lam = lam

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
        return sgns_loss(
            pos_scores, neg_scores, neg_mask=neg_mask, weights=weights, reduction=self.reduction,
            reduce_total=self.reduce_total, lam=self.lam,
        )

    def extra_repr(self) -> str:
        return f"lam={self.lam}, {super().extra_repr()}"
