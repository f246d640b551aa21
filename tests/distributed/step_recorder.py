"""A callback for the DDP tests: every rank records its parameters and batches as it trains."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor


def on_cpu(value: Any) -> Any:
    """``value`` (a tensor, a dict, a dataclass or named tuple of tensors) on the CPU, as a dict."""
    if isinstance(value, Tensor):
        return value.detach().cpu().clone()
    if isinstance(value, dict):
        return {key: on_cpu(item) for key, item in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: on_cpu(getattr(value, field.name))
                for field in dataclasses.fields(value)}
    if isinstance(value, tuple) and hasattr(value, "_asdict"):
        return on_cpu(value._asdict())
    return value


class RecordSteps(pl.Callback):
    """Writes ``FOLDER/rank{R}.pt`` on every rank when training ends: the parameters when
    training starts (after DDP's broadcast) and after every batch, every batch as the task
    received it, and the final ``global_step``.

    Args:
        folder: where the files go.
    """

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)
        self.start: dict[str, Tensor] = {}
        self.after: list[dict[str, Tensor]] = []
        self.batches: list[Any] = []

    @staticmethod
    def parameters(module: pl.LightningModule) -> dict[str, Tensor]:
        return {name: on_cpu(param) for name, param in module.named_parameters()}

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.start = self.parameters(pl_module)

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self.batches.append(on_cpu(batch))

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
        batch_idx: int,
    ) -> None:
        self.after.append(self.parameters(pl_module))

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        torch.save(
            {"start": self.start, "after": self.after, "batches": self.batches,
             "end": self.parameters(pl_module), "global_step": trainer.global_step},
            self.folder / f"rank{trainer.global_rank}.pt",
        )
