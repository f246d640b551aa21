"""A callback for the DDP tests: every rank saves its skip-gram tables when training ends."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch


class SaveTables(pl.Callback):
    """Writes ``FOLDER/rank{R}.pt`` with the task's input and output tables on every rank.

    Args:
        folder: where the files go.
    """

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tables = {name: tensor.detach().cpu().clone()
                  for name, tensor in pl_module.embeddings.state_dict().items()}
        torch.save({"tables": tables, "step": trainer.global_step},
                   self.folder / f"rank{trainer.global_rank}.pt")
