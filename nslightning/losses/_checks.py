"""What every loss function shares: the argument types, the checks of hyperparameters and shapes,
the pair reduction and the masking of dropped negatives."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal, get_args

import torch
from torch import Tensor

Reduction = Literal["mean", "sum", "none"]
ScalarReduction = Literal["mean", "sum"]  # the reductions of the loss classes
Pointwise = Literal["logistic", "hinge", "squared"]
TotalReduction = Callable[[Tensor], Tensor]  # a local normalizer -> the one to divide by


def check_options(
    *,
    loss: str | None = None,
    temperature: float | None = None,
    tau_plus: float | None = None,
    beta: float | None = None,
) -> None:
    """Raises ``ValueError`` for a hyperparameter out of its range; the functions check their
    arguments with it, the modules their constructor's."""
    if loss is not None and loss not in get_args(Pointwise):
        raise ValueError(f"loss must be 'logistic', 'hinge' or 'squared', got {loss!r}.")
    if temperature is not None and (not math.isfinite(temperature) or temperature <= 0):
        raise ValueError(
            f"temperature must be a finite number > 0, got {temperature}; 0.05-1 is usual."
        )
    if tau_plus is not None and not 0 <= tau_plus < 1:
        raise ValueError(f"tau_plus must be in [0, 1), got {tau_plus}: it is a probability.")
    if beta is not None and (not math.isfinite(beta) or beta < 0):
        raise ValueError(f"beta must be a finite number >= 0, got {beta}; 0 turns it off.")


def check_shapes(
    name: str,
    pos_scores: Tensor,
    neg_scores: Tensor,
    *,
    neg_mask: Tensor | None = None,
    log_q: Tensor | None = None,
    pos_log_q: Tensor | None = None,
    weights: Tensor | None = None,
) -> None:
    """Raises ``ValueError`` naming the argument whose shape does not fit the scores."""
    if neg_scores.dim() == 0 or neg_scores.shape[:-1] != pos_scores.shape:
        raise ValueError(
            f"{name}: neg_scores must be pos_scores' shape plus K, got {tuple(pos_scores.shape)}"
            f" and {tuple(neg_scores.shape)}."
        )
    for arg, value, target in (
        ("neg_mask", neg_mask, neg_scores.shape),
        ("log_q", log_q, neg_scores.shape),
        ("weights", weights, pos_scores.shape),
        ("pos_log_q", pos_log_q, pos_scores.shape),
    ):
        if value is not None and _broadcast_shape(value.shape, target) != target:
            raise ValueError(
                f"{name}: {arg} of shape {tuple(value.shape)} does not broadcast to "
                f"{tuple(target)}; give it the shape of the scores it goes with (or a "
                "broadcastable one such as (B, 1, K) against (B, C, K))."
            )


def reduce_pairs(
    per_pair: Tensor,
    weights: Tensor | None,
    reduction: Reduction,
    reduce_total: TotalReduction | None = None,
) -> Tensor:
    """Applies pair weights and the reduction (the weighted mean divides by the total weight,
    passed through ``reduce_total`` first when given)."""
    if weights is not None:
        per_pair = per_pair * weights
    if reduction == "none":
        return per_pair
    if reduction == "sum":
        return per_pair.sum()
    if reduction == "mean":
        total = pair_total(per_pair, weights, reduce_total)
        return per_pair.sum() / total.clamp_min(1e-12)
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}.")


def pair_total(
    per_pair: Tensor, weights: Tensor | None, reduce_total: TotalReduction | None = None
) -> Tensor:
    """The total weight of the pairs (their number without ``weights``), the normalizer of the
    weighted mean, passed through ``reduce_total`` when given."""
    if weights is None:
        total = per_pair.new_tensor(per_pair.numel())
    else:
        total = weights.expand_as(per_pair).sum()
    return total if reduce_total is None else reduce_total(total)


def drop_masked(neg_scores: Tensor, neg_mask: Tensor | None) -> Tensor:
    """``neg_scores`` with the dropped slots set to 0, so that what they held (even inf or NaN)
    reaches neither a loss's value nor, through ``0 * ℓ'(inf)``, its gradient."""
    if neg_mask is None:
        return neg_scores
    return torch.where(neg_mask, neg_scores, 0.0)


def _broadcast_shape(shape: torch.Size, target: torch.Size) -> torch.Size | None:
    """The broadcast of ``shape`` with ``target``, or ``None`` if they do not broadcast."""
    try:
        return torch.broadcast_shapes(shape, target)
    except RuntimeError:
        return None
