"""A quiet CPU Trainer for tests that fit a task in-process. A plain helper module (no tests)."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl


def quiet_trainer(tmp_path: Path, epochs: int = 1, **options: object) -> pl.Trainer:
    """No logger, checkpoints, progress bar, summary or sanity check; ``options`` override."""
    defaults: dict[str, object] = {
        "max_epochs": epochs, "logger": False, "enable_checkpointing": False,
        "enable_progress_bar": False, "enable_model_summary": False, "accelerator": "cpu",
        "default_root_dir": tmp_path, "num_sanity_val_steps": 0,
    }
    return pl.Trainer(**{**defaults, **options})  # type: ignore[arg-type]
