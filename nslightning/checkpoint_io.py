"""Checkpoints written atomically: a reader (or a resumed run) sees the old file or the whole
new one, never half of one, whatever kills the writer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning_fabric.utilities.types import _PATH
from pytorch_lightning.plugins.io import TorchCheckpointIO

from nslightning.atomic import atomic_write


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` that writes local checkpoints under a temporary name, fsyncs, and
    renames (Lightning's own writes the final name in place, so a SIGKILL or a full disk
    during the write leaves a truncated ``last.ckpt``). Remote paths (``s3://...``) are left to
    Lightning. The ``nslightning`` CLI installs it; from Python pass
    ``Trainer(plugins=[AtomicCheckpointIO()])``.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None
    ) -> None:
        if "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        if storage_options is not None:
            raise TypeError(
                "AtomicCheckpointIO takes no storage_options; got "
                f"{storage_options!r}. Use a custom CheckpointIO for them."
            )
        with atomic_write(Path(path), "wb") as handle:
            torch.save(checkpoint, handle)
