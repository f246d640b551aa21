"""The W&B run id kept in checkpoints, so that a resumed run continues the same W&B run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import WandbLogger

WANDB_RUN_ID = "wandb_run_id"


def save_run_id(trainer: pl.Trainer, checkpoint: dict[str, Any]) -> None:
    """Stores the id of the trainer's W&B run (if it has one) in ``checkpoint``."""
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger) and logger.version:
            checkpoint[WANDB_RUN_ID] = logger.version


def saved_run_id(path: str | Path) -> str | None:
    """The W&B run id stored in a checkpoint file, or ``None``.

    Raises:
        FileNotFoundError: no file at ``path``.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist; check --ckpt_path.")
    checkpoint = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    run_id = checkpoint.get(WANDB_RUN_ID) if isinstance(checkpoint, dict) else None
    return str(run_id) if run_id else None
