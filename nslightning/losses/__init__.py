"""Losses: pure functions in ``functional`` and thin ``nn.Module`` wrappers, every one a
:class:`NegativeSamplingLoss`."""

from typing import Any

from nslightning.deprecation import warn_renamed
from nslightning.losses.base import NegativeSamplingLoss
from nslightning.losses.contrastive import WeightedContrastiveLoss
from nslightning.losses.functional import (
    debiased_contrastive_loss,
    info_nce_loss,
    nce_loss,
    pointwise_loss,
    sampled_softmax_loss,
    sgns_loss,
    weighted_contrastive_loss,
)
from nslightning.losses.sampled_output import NCELoss, SampledSoftmaxLoss
from nslightning.losses.schedules import Constant, LinearWarmup, Schedule
from nslightning.losses.sgns import SGNSLoss
from nslightning.losses.softmax import (
    DebiasedContrastiveLoss,
    HardNegativeContrastiveLoss,
    InfoNCELoss,
)

__all__ = [
    "Constant",
    "DebiasedContrastiveLoss",
    "HardNegativeContrastiveLoss",
    "InfoNCELoss",
    "LinearWarmup",
    "NCELoss",
    "NegativeSamplingLoss",
    "SGNSLoss",
    "SampledSoftmaxLoss",
    "Schedule",
    "WeightedContrastiveLoss",
    "debiased_contrastive_loss",
    "info_nce_loss",
    "nce_loss",
    "pointwise_loss",
    "sampled_softmax_loss",
    "sgns_loss",
    "weighted_contrastive_loss",
]


def __getattr__(name: str) -> Any:
    """``ContrastiveLoss``, the old name of :class:`NegativeSamplingLoss`, for one release."""
    if name == "ContrastiveLoss":
        warn_renamed("nslightning.losses", "ContrastiveLoss", "NegativeSamplingLoss")
        return NegativeSamplingLoss
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
