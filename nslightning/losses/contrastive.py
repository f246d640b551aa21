"""The λ-weighted contrastive loss of the project's source documents."""

from __future__ import annotations

import math
from typing import Any, ClassVar

from torch import Tensor

from nslightning.deprecation import warn_renamed
from nslightning.losses._checks import Pointwise, ScalarReduction, check_options
from nslightning.losses.base import NegativeSamplingLoss
from nslightning.losses.functional.contrastive import weighted_contrastive_loss
from nslightning.losses.schedules import Constant, Schedule


def __getattr__(name: str) -> Any:
    """``ContrastiveLoss``, the old name of :class:`NegativeSamplingLoss`, for one release."""
    if name == "ContrastiveLoss":
        warn_renamed("nslightning.losses.contrastive", "ContrastiveLoss", "NegativeSamplingLoss")
        return NegativeSamplingLoss
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class WeightedContrastiveLoss(NegativeSamplingLoss):
    """``(1/|S+|) Σ ℓ(s_i, +1) + λ (1/|S-|) Σ ℓ(s_j, -1)``; see
    :func:`~nslightning.losses.functional.weighted_contrastive_loss`. ``log_q`` and
    ``pos_log_q`` are ignored.

    Args:
        lam: ``λ >= 0``, or a :class:`~nslightning.losses.schedules.Schedule` of it over the
            optimizer steps (for example ``LinearWarmup(end=1.0, steps=1000)``).
        loss: the per-score loss ``ℓ``: ``"logistic"``, ``"hinge"`` or ``"squared"``.
        margin: the hinge's margin.
        reduction: ``"mean"`` (the formula above) or ``"sum"``: the formula times the total
            positive weight ``|S+|`` (the loss is not a sum over pairs; this makes its
            positive term the weighted sum over pairs and keeps λ's meaning).

    Shape:
        - pos_scores: ``(*)``
        - neg_scores: ``(*, K)``
        - neg_mask: ``(*, K)`` bool (broadcastable) or ``None``
        - weights: ``(*)`` (broadcastable) or ``None``
        - output: scalar
    """

    pointwise: ClassVar[bool] = True

    def __init__(
        self,
        lam: float | Schedule = 1.0,
        loss: Pointwise = "logistic",
        margin: float = 1.0,
        reduction: ScalarReduction = "mean",
    ) -> None:
        super().__init__(reduction)
        check_options(loss=loss)
        self.schedule = lam if isinstance(lam, Schedule) else Constant(lam)
        self.loss: Pointwise = loss
        self.margin = margin
        self._checked(self.schedule(1 << 40))  # a schedule's end is checked now, not mid-run
        self.lam = self._checked(self.schedule(0))

    @staticmethod
    def _checked(lam: float) -> float:
        if not math.isfinite(lam) or lam < 0:
            raise ValueError(
                f"lam must be a finite number >= 0, got {lam}: λ weights the negative term "
                "(check the value or the schedule's start and end)."
            )
        return lam

    def set_step(self, step: int) -> None:
        self.lam = self._checked(self.schedule(step))

    def logged_values(self) -> dict[str, float]:
        return {"lam": self.lam}

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
        return weighted_contrastive_loss(
            pos_scores, neg_scores, lam=self.lam, loss=self.loss, margin=self.margin,
            neg_mask=neg_mask, weights=weights, reduction=self.reduction,
            reduce_total=self.reduce_total,
        )

    def extra_repr(self) -> str:
        return (
            f"lam={self.schedule!r}, loss={self.loss!r}, margin={self.margin}, "
            f"{super().extra_repr()}"
        )
