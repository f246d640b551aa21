"""The global random state in checkpoints, so that a resumed run draws what the uninterrupted
run would have drawn (dropout, anything that uses ``torch``'s, NumPy's or Python's default
generator)."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch


def numpy_state() -> dict[str, Any]:
    """NumPy's legacy global generator state as tensors and numbers (``torch.load`` reads
    checkpoints with ``weights_only=True``, which refuses NumPy arrays)."""
    state: Any = np.random.get_state(legacy=True)  # (name, keys, position, has_gauss, cached)
    name, keys, position, has_gauss, cached = state
    return {
        "name": str(name), "keys": torch.from_numpy(keys.astype(np.int64)),
        "position": int(position), "has_gauss": int(has_gauss), "cached": float(cached),
    }


def set_numpy_state(state: dict[str, Any]) -> None:
    keys = state["keys"].numpy().astype(np.uint32)
    np.random.set_state(
        (state["name"], keys, state["position"], state["has_gauss"], state["cached"])
    )


class GlobalRandomState(pl.Callback):
    """Saves the default generators' states with every checkpoint and restores them just before
    the resumed run's first training batch.

    Restoring at that point, not when the checkpoint is read, skips what a resumed run does
    before it trains and an uninterrupted run does not (the sanity check, a validation
    DataLoader's iterator). The project's training DataLoaders take their own ``generator``, so
    that starting an epoch draws nothing from the global one. The samplers and the skip-gram
    windows keep their own streams in the checkpoint.

    Checkpoints are written by rank 0: with DDP every rank resumes from rank 0's state (with
    ``seed_everything`` all ranks start from the same one).
    """

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "torch": torch.get_rng_state(),
            "numpy": numpy_state(),
            "python": random.getstate(),
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self._pending is None:
            return
        state, self._pending = self._pending, None
        torch.set_rng_state(state["torch"])
        set_numpy_state(state["numpy"])
        random.setstate(state["python"])
        saved_cuda = state.get("cuda")
        # on another number of GPUs each keeps its seeded state
        if saved_cuda is not None and len(saved_cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(saved_cuda)
