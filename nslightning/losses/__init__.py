"""Losses: pure functions in ``functional`` and thin ``nn.Module`` wrappers."""

from nslightning.losses.functional import sgns_loss
from nslightning.losses.sgns import SGNSLoss

__all__ = ["SGNSLoss", "sgns_loss"]
