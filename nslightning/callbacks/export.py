"""Exports trained embeddings in word2vec format at the end of training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.utilities import rank_zero_info, rank_zero_only
from torch import Tensor

from nslightning.callbacks.word2vec_format import save_word2vec_format
from nslightning.data.contract import task_data
from nslightning.data.vocabulary import Vocabulary
from nslightning.run_folders import RUN_DIR, run_dir


class Word2VecExport(pl.Callback):
    """Writes one of the task's embedding tables with its vocabulary in word2vec format.

    The task names its tables in ``embedding_tables()`` (skip-gram: ``words``; contrastive:
    ``anchors`` and ``items``) and the DataModule gives their vocabularies in
    ``vocabularies()``. Also writes the vocabulary (``token<TAB>count``) beside the vectors, so
    that training can resume with the same ids. Runs once, on rank 0; writes are atomic.

    ``{run_dir}`` in a path is the run's own folder (``<save_dir>/<name>/version_N`` of its
    logger, see :func:`~nslightning.run_folders.run_dir`), so that no run replaces another's
    vectors (a resumed W&B run, which keeps its folder, replaces its own). A path without it
    is refused when the file already exists, before training starts and again when writing
    (another run may have written it meanwhile), unless ``overwrite``.

    Args:
        path: vectors file (``.txt`` text, or ``.bin`` with ``binary=True``).
        binary: word2vec's binary format.
        vocabulary_path: where to save the vocabulary; ``<path>.vocab.tsv`` by default.
        table: which table to export; the task's first (skip-gram's ``words``, the contrastive
            task's ``anchors``) when ``None``.
        overwrite: replace existing files.
    """

    def __init__(
        self,
        path: str = "{run_dir}/vectors.txt",
        binary: bool = False,
        vocabulary_path: str | None = None,
        table: str | None = None,
        overwrite: bool = False,
    ) -> None:
        self.path_template = path
        self.vocabulary_template = vocabulary_path or f"{path}.vocab.tsv"
        self.binary = binary
        self.table = table
        self.overwrite = overwrite

    def paths(self, trainer: pl.Trainer | None) -> tuple[Path, Path]:
        """The ``(vectors, vocabulary)`` files, with ``{run_dir}`` filled in."""
        folder = str(run_dir(trainer)) if trainer is not None else "."
        return (
            Path(self.path_template.replace(RUN_DIR, folder)),
            Path(self.vocabulary_template.replace(RUN_DIR, folder)),
        )

    def replaces(self) -> tuple[bool, bool]:
        """Whether the ``(vectors, vocabulary)`` files replace existing ones: with ``overwrite``,
        or in the run's own folder."""
        return (
            self.overwrite or RUN_DIR in self.path_template,
            self.overwrite or RUN_DIR in self.vocabulary_template,
        )

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        existing = None
        if trainer.is_global_zero:
            pairs = zip(self.paths(trainer), self.replaces(), strict=True)
            found = [path for path, replace in pairs if not replace and path.exists()]
            existing = str(found[0]) if found else None
        existing = trainer.strategy.broadcast(existing)  # every rank stops, none waits
        if existing is not None:
            raise FileExistsError(already_exported(Path(existing)))

    @rank_zero_only
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.export(trainer, pl_module)

    def export(self, trainer: pl.Trainer, pl_module: Any) -> None:
        name, vectors, vocabulary = embedding_table(
            trainer, pl_module, self.table, "Word2VecExport"
        )
        path, vocabulary_path = self.paths(trainer)
        replace_vectors, replace_vocabulary = self.replaces()
        try:
            save_word2vec_format(
                path, vocabulary.tokens, vectors, self.binary, replace=replace_vectors
            )
            vocabulary.save(vocabulary_path, replace=replace_vocabulary)
        except FileExistsError as error:
            raise FileExistsError(already_exported(Path(error.filename or path))) from None
        rank_zero_info(f"Saved {len(vocabulary)} {name} vectors to {path}")


def already_exported(path: Path) -> str:
    return (
        f"{path} exists (written by another run); Word2VecExport does not replace it. Put "
        "'{run_dir}/' in its path (the default) for one file per run, or pass overwrite: true."
    )


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
    data = task_data(trainer, owner, required=False)
    if data is None or not hasattr(pl_module, "embedding_tables"):
        raise RuntimeError(
            f"{owner} needs a DataModule with `vocabularies()` and a task with "
            "`embedding_tables()` (every nslightning task and DataModule has them)."
        )
    tables = pl_module.embedding_tables()
    name = table if table is not None else next(iter(tables))
    if name not in tables:
        raise ValueError(f"{owner}: no table {name!r}; this task has {', '.join(tables)}.")
    vocabulary = data.vocabularies()[name]
    return name, tables[name], vocabulary
