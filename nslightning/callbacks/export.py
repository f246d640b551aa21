"""Exports trained embeddings in word2vec format at the end of training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.utilities import rank_zero_info, rank_zero_only
from torch import Tensor

from nslightning.callbacks.word2vec_format import save_word2vec_format
from nslightning.data.vocabulary import Vocabulary


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
        name, vectors, vocabulary = embedding_table(
            trainer, pl_module, self.table, "Word2VecExport"
        )
        save_word2vec_format(self.path, vocabulary.tokens, vectors, self.binary)
        vocabulary.save(self.vocabulary_path)
        rank_zero_info(f"Saved {len(vocabulary)} {name} vectors to {self.path}")


def embedding_table(
    trainer: pl.Trainer, pl_module: Any, table: str | None, owner: str
) -> tuple[str, Tensor, Vocabulary]:
    """One of the task's ``embedding_tables()`` with the DataModule's vocabulary for it.

    Args:
        table: the table's name; the task's first table when ``None``.
        owner: the callback asking, named in the errors.

    Returns:
        ``(name, vectors (V, D), vocabulary)``.
    """
    datamodule = getattr(trainer, "datamodule", None)
    if not hasattr(datamodule, "vocabularies") or not hasattr(pl_module, "embedding_tables"):
        raise RuntimeError(
            f"{owner} needs a DataModule with `vocabularies()` and a task with "
            "`embedding_tables()` (every nslightning task and DataModule has them)."
        )
    tables = pl_module.embedding_tables()
    name = table if table is not None else next(iter(tables))
    if name not in tables:
        raise ValueError(f"{owner}: no table {name!r}; this task has {', '.join(tables)}.")
    vocabulary = datamodule.vocabularies()[name]  # type: ignore[union-attr]
    return name, tables[name], vocabulary
