"""Logs sampler diagnostics (``sampler/...``) from a task to every logger it has."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import WandbLogger
from torch import Tensor

from nslightning.samplers.base import Negatives
from nslightning.samplers.diagnostics import negative_statistics, rank_histogram


def log_sampler_diagnostics(
    module: pl.LightningModule,
    negatives: Negatives,
    num_items: int,
    pos_scores: Tensor | None = None,
    neg_scores: Tensor | None = None,
    *,
    positives: Tensor | None = None,
    exclude: Tensor | None = None,
) -> dict[str, float]:
    """Computes :func:`~nslightning.samplers.diagnostics.negative_statistics` and logs them.

    Scalars go to every logger as ``sampler/<name>`` at the module's ``global_step`` (straight
    to the loggers, so that they are written whatever ``log_every_n_steps`` is); a W&B logger
    also gets ``sampler/rank_hist``, a histogram of ``log10(frequency rank + 1)``. This reads
    the values back to the host: call it every N steps, not every step.

    Returns:
        The logged scalars.
    """
    stats = negative_statistics(
        negatives, num_items, pos_scores, neg_scores, positives=positives, exclude=exclude
    )
    values = torch.stack(list(stats.values())).tolist() if stats else []  # one read-back
    metrics = {f"sampler/{name}": value for name, value in zip(stats, values, strict=True)}
    if not module.trainer.is_global_zero:
        return metrics
    step = module.global_step
    for logger in module.loggers:
        logger.log_metrics(metrics, step=step)
        if isinstance(logger, WandbLogger):
            import wandb

            counts, edges = rank_histogram(negatives, num_items)
            histogram = wandb.Histogram(np_histogram=(counts.numpy(), edges.numpy()))
            logger.experiment.log({"sampler/rank_hist": histogram, "trainer/global_step": step})
    return metrics
