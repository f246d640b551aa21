"""Logs sampler diagnostics (``sampler/...``) from a task to every logger it has."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import WandbLogger
from torch import Tensor

from nslightning.loggers.steps import logging_step
from nslightning.samplers.base import Negatives
from nslightning.samplers.diagnostics import negative_statistics, rank_histogram


def score_histogram(scores: Tensor) -> Any:
    """A 64-bin ``wandb.Histogram`` of finite scores (any shape)."""
    import wandb

    values = scores.detach().float().flatten().cpu().numpy()
    return wandb.Histogram(np_histogram=np.histogram(values[np.isfinite(values)], bins=64))


def log_sampler_diagnostics(
    module: pl.LightningModule,
    negatives: Negatives,
    vocab_size: int,
    pos_scores: Tensor | None = None,
    neg_scores: Tensor | None = None,
    *,
    positives: Tensor | None = None,
    exclude: Tensor | None = None,
    update: int | None = None,
) -> dict[str, float]:
    """Computes :func:`~nslightning.samplers.diagnostics.negative_statistics` and logs them.

    Scalars go to every logger as ``sampler/<name>`` at the step of the rows that ``self.log``
    writes (:func:`~nslightning.loggers.steps.logging_step`: batches, whatever the optimizer
    steps per batch), straight to the loggers so that they are written whatever
    ``log_every_n_steps`` is; ``update``, when given (the task's optimizer step count), is
    logged as the column ``sampler/update``, not as the step. A W&B logger
    also gets histograms: ``sampler/rank_hist`` of ``log10(frequency rank + 1)`` of the
    negatives, ``sampler/pos_scores`` and ``sampler/neg_scores`` (kept negatives). This reads
    the values back to the host: call it every N steps, not every step.

    Returns:
        The logged scalars.
    """
    stats = negative_statistics(
        negatives, vocab_size, pos_scores, neg_scores, positives=positives, exclude=exclude
    )
    values = torch.stack(list(stats.values())).tolist() if stats else []  # one read-back
    metrics = {f"sampler/{name}": value for name, value in zip(stats, values, strict=True)}
    if update is not None:
        metrics["sampler/update"] = float(update)
    if not module.trainer.is_global_zero:
        return metrics
    step = logging_step(module.trainer)
    for logger in module.loggers:
        logger.log_metrics(metrics, step=step)
        if isinstance(logger, WandbLogger):
            import wandb

            counts, edges = rank_histogram(negatives, vocab_size)
            panels = {
                "sampler/rank_hist": wandb.Histogram(np_histogram=(counts.numpy(), edges.numpy()))
            }
            if pos_scores is not None:
                panels["sampler/pos_scores"] = score_histogram(pos_scores)
            if neg_scores is not None:
                kept = neg_scores[negatives.mask.expand_as(neg_scores)]
                panels["sampler/neg_scores"] = score_histogram(kept)
            logger.experiment.log({**panels, "trainer/global_step": step})
    return metrics
