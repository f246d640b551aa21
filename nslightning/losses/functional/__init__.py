"""Pure loss functions. Shapes broadcast over any leading dimensions ``*``.

Every loss takes the scores of positive pairs ``(*)`` and of their negatives ``(*, K)``, then
keyword-only, with one vocabulary: ``neg_mask`` (``False`` drops a negative: an accidental hit
or an empty slot), ``log_q`` (the log of each negative's per-draw probability under the
sampler), ``pos_log_q`` (the same for the positive), per-pair ``weights``, ``reduction``,
``reduce_total`` (the DDP normalizer) and the loss's hyperparameters. Each function reads the
ones its maths uses. One module per family; every function is importable from here.
"""

from nslightning.losses._checks import (
    Pointwise,
    Reduction,
    ScalarReduction,
    TotalReduction,
    check_options,
)
from nslightning.losses.functional.contrastive import pointwise_loss, weighted_contrastive_loss
from nslightning.losses.functional.sampled_output import nce_loss, sampled_softmax_loss
from nslightning.losses.functional.sgns import sgns_loss
from nslightning.losses.functional.softmax import debiased_contrastive_loss, info_nce_loss

__all__ = [
    "Pointwise",
    "Reduction",
    "ScalarReduction",
    "TotalReduction",
    "check_options",
    "debiased_contrastive_loss",
    "info_nce_loss",
    "nce_loss",
    "pointwise_loss",
    "sampled_softmax_loss",
    "sgns_loss",
    "weighted_contrastive_loss",
]
