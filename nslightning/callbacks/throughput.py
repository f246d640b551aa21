"""Words (tokens) or pairs per second, measured around the training steps."""

from __future__ import annotations

import time
from typing import Any

import pytorch_lightning as pl
import torch


def batch_size_in_units(batch: Any) -> tuple[str, int]:
    """``("words", n)`` for batches that carry ``num_tokens`` (skip-gram chunks, LM windows),
    ``("pairs", n)`` for pair batches (a dict with ``anchors``)."""
    if hasattr(batch, "num_tokens"):
        return "words", int(batch.num_tokens)
    if isinstance(batch, dict) and "anchors" in batch:
        return "pairs", int(batch["anchors"].numel())
    return "words", 0


class Throughput(pl.Callback):
    """Logs ``train/words_per_s`` (or ``train/pairs_per_s``) over the training steps.

    Measured over windows of ``window`` batches, and over what remains at the end of an epoch.
    Skip-gram chunks and language-model windows count corpus tokens (``num_tokens``); pair
    batches count pairs. The clock runs from the start of the first batch, so data loading is
    included. Under DDP each rank measures its own rate and the logged value is their sum, the
    run's throughput.

    Args:
        window: batches per measurement.
    """

    def __init__(self, window: int = 10) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}.")
        self.window = window
        self._start: float | None = None
        self._count = 0
        self._unit = "words"
        self._batches = 0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start, self._count, self._batches = None, 0, 0

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self._start is None:
            self._start = time.perf_counter()

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        self._unit, count = batch_size_in_units(batch)
        self._count += count
        self._batches += 1
        if self._batches >= self.window:
            self._log(pl_module)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._batches:
            self._log(pl_module)

    def _log(self, pl_module: pl.LightningModule) -> None:
        """Logs the rate on every rank (a collective: ranks run the same number of batches)."""
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)  # count finished work, not queued work
        if self._start is not None:
            elapsed = max(time.perf_counter() - self._start, 1e-9)
            pl_module.log(
                f"train/{self._unit}_per_s", self._count / elapsed, prog_bar=True,
                sync_dist=True, reduce_fx="sum",
            )
        self._start, self._count, self._batches = time.perf_counter(), 0, 0
