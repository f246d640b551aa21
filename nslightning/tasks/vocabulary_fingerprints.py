"""Checkpoints remember the vocabularies their embedding rows were trained with."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl

KEY = "vocabulary_fingerprints"
_LEGACY_KEY = "vocabulary_fingerprint"  # skip-gram checkpoints from before tables were named


def save_fingerprints(trainer: pl.Trainer | None, checkpoint: dict[str, Any]) -> None:
    """Stores the fingerprint of each of the DataModule's ``vocabularies()``, if it has any."""
    datamodule = getattr(trainer, "datamodule", None)
    if hasattr(datamodule, "vocabularies"):
        vocabularies = datamodule.vocabularies()  # type: ignore[union-attr]
        checkpoint[KEY] = {name: v.fingerprint() for name, v in vocabularies.items()}


def check_fingerprints(
    trainer: pl.Trainer | None, checkpoint: dict[str, Any], mismatch: str
) -> None:
    """Raises ``ValueError(mismatch)`` if the DataModule's vocabularies differ from the saved
    ones (same sizes, other ids or order); does nothing when either side has none."""
    saved = checkpoint.get(KEY)
    if saved is None and _LEGACY_KEY in checkpoint:
        saved = {"words": checkpoint[_LEGACY_KEY]}
    datamodule = getattr(trainer, "datamodule", None)
    if saved is None or not hasattr(datamodule, "vocabularies"):
        return
    vocabularies = datamodule.vocabularies()  # type: ignore[union-attr]
    if {name: v.fingerprint() for name, v in vocabularies.items()} != saved:
        raise ValueError(mismatch)
