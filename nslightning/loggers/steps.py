"""The step that Lightning writes logged values at, for values sent straight to the loggers."""

from __future__ import annotations

import pytorch_lightning as pl


def logging_step(trainer: pl.Trainer) -> int:
    """The ``step`` of the rows that ``self.log`` produces now: the batches that stepped so far
    (what Lightning's logger connector uses).

    ``trainer.global_step`` counts optimizer steps, which is another scale when a task takes
    several per batch (skip-gram's autograd engine): values given to ``logger.log_metrics``
    directly use this step, so that every row of a run is on one scale.
    """
    loop = getattr(getattr(trainer, "fit_loop", None), "epoch_loop", None)
    step = getattr(loop, "_batches_that_stepped", None)
    return int(step) if isinstance(step, int) else int(trainer.global_step)
