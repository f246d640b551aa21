"""Losses: pure functions in ``functional`` and thin ``nn.Module`` wrappers."""

from nslightning.losses.contrastive import ContrastiveLoss, WeightedContrastiveLoss
from nslightning.losses.functional import (
    debiased_contrastive_loss,
    info_nce_loss,
    pointwise_loss,
    sgns_loss,
    weighted_contrastive_loss,
)
from nslightning.losses.sampled_output import nce_loss, sampled_softmax_loss
from nslightning.losses.schedules import Constant, LinearWarmup, Schedule
from nslightning.losses.sgns import SGNSLoss
from nslightning.losses.softmax import (
    DebiasedContrastiveLoss,
    HardNegativeContrastiveLoss,
    InfoNCELoss,
)

__all__ = [
    "Constant",
    "ContrastiveLoss",
    "DebiasedContrastiveLoss",
    "HardNegativeContrastiveLoss",
    "InfoNCELoss",
    "LinearWarmup",
    "SGNSLoss",
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
