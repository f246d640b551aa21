"""The loss interface of the contrastive task, and the λ-weighted contrastive loss."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

from torch import Tensor, nn

from nslightning.losses.functional import (
    Pointwise,
    TotalReduction,
    check_options,
    weighted_contrastive_loss,
)
from nslightning.losses.schedules import Constant, Schedule


class ContrastiveLoss(nn.Module, ABC):
    """A loss over positive scores and their negatives' scores; holds only hyperparameters.

    Shape:
        - pos_scores: ``(*)``
        - neg_scores: ``(*, K)``
        - neg_mask: ``(*, K)`` bool or ``None`` (``False`` drops a negative)
        - log_q: ``(*, K)`` or ``None``, the sampler's log probability of each negative
        - weights: ``(*)`` or ``None``, per-pair weights
        - output: scalar

    ``reduce_total`` is set by the task under DDP (the mean over ranks of a local normalizer),
    so that the means divide by the global batch's totals; ``None`` in one process.
    """

    reduce_total: TotalReduction | None = None

    @abstractmethod
    def forward(
        self,
        pos_scores: Tensor,
        neg_scores: Tensor,
        neg_mask: Tensor | None = None,
        log_q: Tensor | None = None,
        weights: Tensor | None = None,
    ) -> Tensor:
        """The loss of a batch."""

    def set_step(self, step: int) -> None:
        """Tells the loss the current optimizer step (for scheduled hyperparameters)."""

    def logged_values(self) -> dict[str, float]:
        """Scheduled hyperparameters the task logs under ``train/<name>``."""
        return {}


class WeightedContrastiveLoss(ContrastiveLoss):
    """``(1/|S+|) Σ ℓ(s_i, +1) + λ (1/|S-|) Σ ℓ(s_j, -1)``; see
    :func:`~nslightning.losses.functional.weighted_contrastive_loss`.

    Args:
        lam: ``λ >= 0``, or a :class:`~nslightning.losses.schedules.Schedule` of it over the
            optimizer steps (for example ``LinearWarmup(end=1.0, steps=1000)``).
        loss: the per-score loss ``ℓ``: ``"logistic"``, ``"hinge"`` or ``"squared"``.
        margin: the hinge's margin.
    """

    def __init__(
        self, lam: float | Schedule = 1.0, loss: Pointwise = "logistic", margin: float = 1.0
    ) -> None:
        super().__init__()
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
        neg_mask: Tensor | None = None,
        log_q: Tensor | None = None,
        weights: Tensor | None = None,
    ) -> Tensor:
        return weighted_contrastive_loss(
            pos_scores, neg_scores, lam=self.lam, loss=self.loss, margin=self.margin,
            neg_mask=neg_mask, weights=weights, reduce_total=self.reduce_total,
        )

    def extra_repr(self) -> str:
        return f"lam={self.schedule!r}, loss={self.loss!r}, margin={self.margin}"
