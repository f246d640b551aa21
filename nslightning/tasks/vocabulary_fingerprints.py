"""Checkpoints remember the vocabularies their embedding rows were trained with."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl

from nslightning.data.contract import task_data

KEY = "vocabulary_fingerprints"
_LEGACY_KEY = "vocabulary_fingerprint"  # skip-gram checkpoints from before tables were named


def save_fingerprints(trainer: pl.Trainer | None, checkpoint: dict[str, Any]) -> None:
    """Stores the fingerprint of each of the DataModule's ``vocabularies()`` (when the task
    trains with a DataModule)."""
    data = task_data(trainer, "the checkpoint", required=False)
    if data is not None:
        checkpoint[KEY] = {name: v.fingerprint() for name, v in data.vocabularies().items()}


def check_fingerprints(
    trainer: pl.Trainer | None, checkpoint: dict[str, Any], mismatch: str
) -> None:
    """Raises ``ValueError(mismatch)`` if the DataModule's vocabularies differ from the saved
    ones (same sizes, other ids or order); does nothing when either side has none."""
    saved = checkpoint.get(KEY)
    if saved is None and _LEGACY_KEY in checkpoint:
        saved = {"words": checkpoint[_LEGACY_KEY]}
    data = task_data(trainer, "the checkpoint", required=False)
    if saved is None or data is None:
        return
    if {name: v.fingerprint() for name, v in data.vocabularies().items()} != saved:
        raise ValueError(mismatch)
