"""The one contract of every loss: scores of positives and their negatives in, a scalar out."""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from typing import Any, ClassVar, get_args

from torch import Tensor, nn

from nslightning.losses._checks import ScalarReduction, TotalReduction


class NegativeSamplingLoss(nn.Module, ABC):
    """A loss over positive scores and their negatives' scores; holds only hyperparameters.

    Every loss is a thin wrapper over a pure function of :mod:`nslightning.losses.functional`
    and takes the same keyword arguments, whichever it reads: a task calls any loss the same
    way and asks it, through the capabilities below, what it needs.

    Args:
        reduction: ``"mean"``, the weighted mean over pairs (pair ``i`` counts ``w_i``), or
            ``"sum"``, the weighted sum over pairs (for the λ-weighted loss, which is not a sum
            over pairs, the mean form times the total positive weight; see
            :func:`~nslightning.losses.functional.weighted_contrastive_loss`). Per-pair losses
            (``"none"``) come from the functional forms.

    Shape:
        - pos_scores: ``(*)``, the positive pairs' scores.
        - neg_scores: ``(*, K)``, each pair's ``K`` negatives' scores.
        - neg_mask: ``(*, K)`` bool, broadcastable, or ``None``; ``False`` drops a negative (an
          accidental hit, an empty slot): its score, even inf or NaN, reaches neither the value
          nor the gradient.
        - log_q: ``(*, K)`` broadcastable (``(1, K)`` for candidates shared by every row), or
          ``None``: the log of each negative's per-draw probability under the sampler.
        - weights: ``(*)`` broadcastable, or ``None``: non-negative pair weights (0 drops a
          padded pair).
        - pos_log_q: ``(*)`` or ``None``: the positive's per-draw log probability under the
          sampler (read by sampled softmax and NCE only).
        - output: scalar.

    Capabilities, which a task reads instead of checking classes (like torchmetrics'
    ``higher_is_better``):

    - ``fused_form`` (class attribute, ``None``): the name of a fused kernel that implements
      this loss. ``"sgns"`` (on :class:`~nslightning.losses.SGNSLoss`): the fused skip-gram
      kernel's per-pair SGD of ``-log σ(s) - λ Σ_k log σ(-n_k)``, with the instance's ``lam``.
    - ``uses_log_q`` (``False``): :meth:`forward` reads ``log_q`` (a sampler that gives none
      then is an error). A property, read on the instance: losses where an option decides
      (``correct_log_q``) override it; the others set a class attribute.
    - ``needs_fixed_distribution`` (class attribute, ``False``): the loss's logits assume one
      fixed noise distribution and need ``pos_log_q`` (NCE), so in-batch or mined negatives
      do not fit it.
    - ``keeps_accidental_hits`` (class attribute, ``False``): the loss's derivation keeps
      negatives equal to the positive (NCE). It is the default of a task whose
      ``accidental_hits`` can be ``keep`` (the language model); skip-gram and the contrastive
      task always mask the positive, as their ``accidental_hits`` say.
    - ``pointwise`` (class attribute, ``False``): the loss reads each score as log-odds on its
      own, so a constant added to every score changes it (a softmax over the row does not
      see it). With a distance score the contrastive task then calibrates the scores by
      default (:class:`~nslightning.models.ScoreCalibration`).

    ``reduce_total`` is set by the task under DDP (the mean over ranks of a local normalizer),
    so that the means divide by the global batch's totals; ``None`` in one process.
    """

    fused_form: ClassVar[str | None] = None
    needs_fixed_distribution: ClassVar[bool] = False
    keeps_accidental_hits: ClassVar[bool] = False
    pointwise: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Refuses, where the class is written, a ``forward`` of the old contrastive-loss
        contract (``forward(pos_scores, neg_scores, neg_mask, log_q, weights)``): the tasks call
        every loss with the keyword arguments above, ``pos_log_q`` included."""
        super().__init_subclass__(**kwargs)
        parameters = inspect.signature(cls.forward).parameters.values()
        takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters) or {
            "neg_mask", "log_q", "weights", "pos_log_q"
        } <= {p.name for p in parameters}
        if not takes_all:
            raise TypeError(
                f"{cls.__name__}.forward must take (pos_scores, neg_scores, *, neg_mask=None, "
                "log_q=None, weights=None, pos_log_q=None), the NegativeSamplingLoss contract "
                "(the 0.1 ContrastiveLoss had no pos_log_q); a loss that reads log_q also "
                "declares uses_log_q = True."
            )

    def __init__(self, reduction: ScalarReduction = "mean") -> None:
        super().__init__()
        if reduction not in get_args(ScalarReduction):
            hint = (
                " For per-pair losses call the functional form with reduction='none' (see "
                "nslightning.losses.functional)." if reduction == "none" else ""
            )
            raise ValueError(
                f"{type(self).__name__}: reduction must be 'mean' or 'sum', got "
                f"{reduction!r}.{hint}"
            )
        self.reduction: ScalarReduction = reduction
        self.reduce_total: TotalReduction | None = None

    @property
    def uses_log_q(self) -> bool:
        """Whether :meth:`forward` reads ``log_q``."""
        return False

    @abstractmethod
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
        """The loss of a batch, reduced to a scalar (shapes in the class docstring)."""

    def set_step(self, step: int) -> None:
        """Tells the loss the current optimizer step (for scheduled hyperparameters)."""

    def logged_values(self) -> dict[str, float]:
        """Scheduled hyperparameters the task logs under ``train/<name>``."""
        return {}

    def check_score(self, score: str) -> None:
        """Warns if the loss does not suit the task's score function (``"dot"``,
        ``"cosine"``, ...); the task calls it once, from its constructor. Does nothing here."""

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"
