"""Words (tokens) per second, measured around the training steps."""

from __future__ import annotations

import time
from typing import Any

import pytorch_lightning as pl
import torch


class Throughput(pl.Callback):
    """Logs ``train/words_per_s``: corpus tokens consumed per second of training steps.

    Measured over windows of ``window`` batches, and over what remains at the end of an epoch.

    The batch must carry ``num_tokens`` (as :class:`~nslightning.data.windows.SkipGramBatch`
    does); the clock runs from the start of the first batch, so data loading is included.

    Args:
        window: batches per measurement.
    """

    def __init__(self, window: int = 10) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}.")
        self.window = window
        self._start: float | None = None
        self._tokens = 0
        self._batches = 0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start, self._tokens, self._batches = None, 0, 0

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
        self._tokens += int(getattr(batch, "num_tokens", 0))
        self._batches += 1
        if self._batches >= self.window:
            self._log(pl_module)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._batches:
            self._log(pl_module)

    def _log(self, pl_module: pl.LightningModule) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)  # count finished work, not queued work
        if self._start is not None and self._tokens:
            elapsed = time.perf_counter() - self._start
            pl_module.log("train/words_per_s", self._tokens / elapsed, prog_bar=True)
        self._start, self._tokens, self._batches = time.perf_counter(), 0, 0
