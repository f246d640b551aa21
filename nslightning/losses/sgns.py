"""Module wrapper around :func:`nslightning.losses.functional.sgns_loss`."""

from __future__ import annotations

from torch import Tensor, nn

from nslightning.losses.functional import Reduction, sgns_loss


class SGNSLoss(nn.Module):
    """Skip-gram negative-sampling loss; see :func:`~nslightning.losses.functional.sgns_loss`.

    Args:
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        lam: weight ``λ >= 0`` of the negatives' terms; ``1`` is SGNS.

    Shape:
        - pos_scores: ``(*)``
        - neg_scores: ``(*, K)``
        - neg_mask: ``(*, K)`` bool or ``None``
        - weight: ``(*)`` or ``None``
        - output: scalar, or ``(*)`` with ``reduction="none"``
    """

    def __init__(self, reduction: Reduction = "mean", lam: float = 1.0) -> None:
        super().__init__()
        if not lam >= 0:
            raise ValueError(f"SGNSLoss: lam (λ) must be >= 0, got {lam}; 1 is SGNS.")
        self.reduction: Reduction = reduction
        self.lam = lam

    def forward(
        self,
        pos_scores: Tensor,
        neg_scores: Tensor,
        neg_mask: Tensor | None = None,
        weight: Tensor | None = None,
    ) -> Tensor:
        return sgns_loss(
            pos_scores, neg_scores, neg_mask, weight=weight, reduction=self.reduction,
            lam=self.lam,
        )
