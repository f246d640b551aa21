"""Exports trained embeddings in word2vec format at the end of training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.utilities import rank_zero_info, rank_zero_only

from nslightning.callbacks.word2vec_format import save_word2vec_format


class Word2VecExport(pl.Callback):
    """Writes one of the task's embedding tables with its vocabulary in word2vec format.

    The task names its tables in ``embedding_tables()`` (skip-gram: ``words``; contrastive:
    ``anchors`` and ``items``) and the DataModule gives their vocabularies in
    ``vocabularies()``. Also writes the vocabulary (``token<TAB>count``) beside the vectors, so
    that training can resume with the same ids. Runs once, on rank 0; writes are atomic.

    Args:
        path: vectors file (``.txt`` text, or ``.bin`` with ``binary=True``).
        binary: word2vec's binary format.
        vocabulary_path: where to save the vocabulary; ``<path>.vocab.tsv`` by default.
        table: which table to export; the task's first (skip-gram's ``words``, the contrastive
            task's ``anchors``) when ``None``.
    """

    def __init__(
        self,
        path: str = "outputs/vectors.txt",
        binary: bool = False,
        vocabulary_path: str | None = None,
        table: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.binary = binary
        self.vocabulary_path = Path(vocabulary_path or f"{path}.vocab.tsv")
        self.table = table

    @rank_zero_only
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.export(trainer, pl_module)

    def export(self, trainer: pl.Trainer, pl_module: Any) -> None:
        datamodule = getattr(trainer, "datamodule", None)
        if not hasattr(datamodule, "vocabularies") or not hasattr(pl_module, "embedding_tables"):
            raise RuntimeError(
                "Word2VecExport needs a DataModule with `vocabularies()` and a task with "
                "`embedding_tables()` (the skip-gram and contrastive tasks and their DataModules)."
            )
        tables = pl_module.embedding_tables()
        name = self.table if self.table is not None else next(iter(tables))
        if name not in tables:
            raise ValueError(
                f"Word2VecExport: no table {name!r}; this task has {', '.join(tables)}."
            )
        vocabulary = datamodule.vocabularies()[name]  # type: ignore[union-attr]
        save_word2vec_format(self.path, vocabulary.tokens, tables[name], self.binary)
        vocabulary.save(self.vocabulary_path)
        rank_zero_info(f"Saved {len(vocabulary)} {name} vectors to {self.path}")
