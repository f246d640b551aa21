"""A Lightning callback that records when training starts and ends, for ``corpus_scale.py``.

Added to a CLI run beside the config's own callbacks (``benchmarks`` on ``PYTHONPATH``):

    NSLIGHTNING_FIRST_STEP_TIMER=timer.json PYTHONPATH=benchmarks \\
        python -m nslightning fit -c configs/skipgram.yaml --trainer.max_steps 20 \\
        --trainer.callbacks+=first_step_timer.FirstStepTimer

At the end of training it writes a JSON file (atomically) to ``$NSLIGHTNING_FIRST_STEP_TIMER``
(or the ``path`` argument) with wall-clock ``time.time()`` stamps:

- ``imported_time``: this module's import, which the CLI does while it parses its arguments
  (it resolves the class path), once torch, Lightning and nslightning are imported and before
  it builds anything: the end of the imports;
- ``init_time``: the callback's construction, once the CLI has built the DataModule and the
  model (the DataModule opens or builds its token store then: the model's ``vocab_size`` comes
  from it), while it builds the trainer;
- ``setup_time`` (``Trainer.fit`` has begun), the first ``on_train_batch_start``, the first and
  the last ``on_train_batch_end``, ``on_train_end``;

and the trainer's ``global_step`` and the process's peak RSS so far. Absolute stamps, so that a
parent that noted ``time.time()`` before starting the process can tell how long the imports
took.
"""

from __future__ import annotations

import json
import os
import resource
import time
from typing import Any

import pytorch_lightning as pl

from nslightning.atomic import atomic_write

IMPORTED_AT = time.time()
ENV_VAR = "NSLIGHTNING_FIRST_STEP_TIMER"


class FirstStepTimer(pl.Callback):
    """Wall-clock stamps of the start of training, its first step and its last step.

    Args:
        path: where to write the JSON; ``None`` reads ``$NSLIGHTNING_FIRST_STEP_TIMER`` (nothing
            is written when neither is set).
    """

    def __init__(self, path: str | None = None) -> None:
        self.init_time = time.time()
        self.path = path if path is not None else os.environ.get(ENV_VAR)
        self.setup_time: float | None = None
        self.first_batch_start: float | None = None
        self.first_batch_end: float | None = None
        self.last_batch_end: float | None = None
        self.batches = 0

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.setup_time is None:
            self.setup_time = time.time()

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self.first_batch_start is None:
            self.first_batch_start = time.time()

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        self.last_batch_end = time.time()
        if self.first_batch_end is None:
            self.first_batch_end = self.last_batch_end
        self.batches += 1

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.path or not trainer.is_global_zero:
            return
        record = {
            "pid": os.getpid(),
            "imported_time": IMPORTED_AT,
            "init_time": self.init_time,
            "setup_time": self.setup_time,
            "first_batch_start": self.first_batch_start,
            "first_batch_end": self.first_batch_end,
            "last_batch_end": self.last_batch_end,
            "train_end_time": time.time(),
            "batches": self.batches,
            "global_step": trainer.global_step,
            "peak_rss_mb_at_train_end": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
        with atomic_write(self.path, "w", encoding="utf-8") as handle:
            json.dump(record, handle)
