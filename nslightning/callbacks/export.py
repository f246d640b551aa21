"""Exports the trained word vectors at the end of training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.utilities import rank_zero_info, rank_zero_only

from nslightning.callbacks.word2vec_format import save_word2vec_format


class Word2VecExport(pl.Callback):
    """Writes ``word_vectors()`` with the DataModule's vocabulary in word2vec format.

    Also writes the vocabulary (``token<TAB>count``) beside the vectors, so that training can
    resume with the same ids (``--data.vocabulary``). Runs once, on rank 0; writes are atomic.

    Args:
        path: vectors file (``.txt`` text, or ``.bin`` with ``binary=True``).
        binary: word2vec's binary format.
        vocabulary_path: where to save the vocabulary; ``<path>.vocab.tsv`` by default.
    """

    def __init__(
        self,
        path: str = "outputs/vectors.txt",
        binary: bool = False,
        vocabulary_path: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.binary = binary
        self.vocabulary_path = Path(vocabulary_path or f"{path}.vocab.tsv")

    @rank_zero_only
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.export(trainer, pl_module)

    def export(self, trainer: pl.Trainer, pl_module: Any) -> None:
        vocabulary = getattr(getattr(trainer, "datamodule", None), "vocabulary", None)
        if vocabulary is None or not hasattr(pl_module, "word_vectors"):
            raise RuntimeError(
                "Word2VecExport needs a DataModule with a `vocabulary` and a task with "
                "`word_vectors()` (SkipGramDataModule and SkipGramTask)."
            )
        save_word2vec_format(self.path, vocabulary.tokens, pl_module.word_vectors(), self.binary)
        vocabulary.save(self.vocabulary_path)
        rank_zero_info(f"Saved {len(vocabulary)} word vectors to {self.path}")
