"""The language-model DataModule: train/valid/test text as token streams for TBPTT."""

from __future__ import annotations

from typing import Literal

import pytorch_lightning as pl
from torch import Tensor
from torch.utils.data import DataLoader

from nslightning.data.corpus import ENWIKI_SAMPLE, read_sentences
from nslightning.data.language_model_text import (
    EOS,
    UNK,
    Lines,
    build_vocabulary,
    encode_lines,
    split_lines,
)
from nslightning.data.token_streams import TokenStreams, TokenWindow
from nslightning.data.vocabulary import Vocabulary

Split = Literal["train", "val", "test"]


class LanguageModelDataModule(pl.LightningDataModule):
    """Reads a text, builds the vocabulary on its training part and serves TBPTT windows.

    The text is either one corpus split by document (line) into train, validation and test by
    :func:`~nslightning.data.language_model_text.split_lines` (the Wikipedia sample by default:
    106 articles, about 453K tokens), or three corpora (``corpus`` for training plus
    ``val_corpus`` and ``test_corpus``). The vocabulary comes from the training part only
    (``<unk>`` replaces rarer and unseen tokens, ``<eos>`` ends each line) and is sorted by
    count, as the log-uniform sampler expects.

    Each split is served as :class:`~nslightning.data.token_streams.TokenStreams`: contiguous
    streams, windows of ``bptt`` tokens in order, which a task reads carrying its LSTM state
    from window to window. Every process serves its own streams.

    Args:
        corpus: the text (a file, folder, glob or ``enwiki-sample``); the training text when
            ``val_corpus`` and ``test_corpus`` are given.
        val_corpus: validation text, or ``None`` to split ``corpus``.
        test_corpus: test text, or ``None`` to split ``corpus``.
        val_fraction: share of the tokens that the split puts in validation.
        test_fraction: share of the tokens that the split puts in test.
        split_seed: seed of the order in which documents are assigned to splits.
        min_count: tokens seen fewer times in training become ``<unk>``.
        max_vocab_size: keep at most this many tokens (``<unk>`` and ``<eos>`` included).
        vocabulary: a vocabulary file (``Vocabulary.save``, e.g. from an earlier run) to use
            instead of building one; it must hold ``<unk>`` and ``<eos>``.
        batch_size: training streams per process.
        eval_batch_size: validation and test streams per process.
        bptt: window length (steps of back-propagation through time).
    """

    def __init__(
        self,
        corpus: str = ENWIKI_SAMPLE,
        val_corpus: str | None = None,
        test_corpus: str | None = None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        split_seed: int = 0,
        min_count: int = 3,
        max_vocab_size: int | None = None,
        vocabulary: str | None = None,
        batch_size: int = 32,
        eval_batch_size: int = 10,
        bptt: int = 35,
    ) -> None:
        super().__init__()
        if (val_corpus is None) != (test_corpus is None):
            raise ValueError(
                "give both --data.val_corpus and --data.test_corpus (corpus is then the training "
                "text), or neither (corpus is split by document)."
            )
        if min(batch_size, eval_batch_size, bptt) < 1:
            raise ValueError(
                "batch_size, eval_batch_size and bptt must be >= 1, got "
                f"{batch_size}, {eval_batch_size} and {bptt}."
            )
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}.")
        self.save_hyperparameters()
        self.corpus = corpus
        self.val_corpus = val_corpus
        self.test_corpus = test_corpus
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.split_seed = split_seed
        self.min_count = min_count
        self.max_vocab_size = max_vocab_size
        self.vocabulary_path = vocabulary
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.bptt = bptt
        self._vocabulary: Vocabulary | None = None
        self._ids: dict[Split, Tensor] = {}

    # --------------------------------------------------------------- text and vocabulary
    def _read(self) -> None:
        if self._ids:
            return
        if self.val_corpus is not None and self.test_corpus is not None:
            texts = (
                self._lines(self.corpus, "training"),
                self._lines(self.val_corpus, "validation"),
                self._lines(self.test_corpus, "test"),
            )
        else:
            texts = split_lines(
                self._lines(self.corpus, "training"),
                self.val_fraction,
                self.test_fraction,
                self.split_seed,
            )
        if self.vocabulary_path is not None:
            self._vocabulary = Vocabulary.load(self.vocabulary_path)
        else:
            self._vocabulary = build_vocabulary(texts[0], self.min_count, self.max_vocab_size)
        splits: tuple[Split, ...] = ("train", "val", "test")
        self._ids = {
            split: encode_lines(lines, self._vocabulary)
            for split, lines in zip(splits, texts, strict=True)
        }

    @staticmethod
    def _lines(source: str, role: str) -> Lines:
        lines = list(read_sentences(source))
        if not lines:
            raise ValueError(
                f"the {role} corpus {source!r} holds no tokens; check the path and that its "
                "files hold whitespace-separated text."
            )
        return lines

    @property
    def vocabulary(self) -> Vocabulary:
        """The vocabulary (the text is read on first use)."""
        self._read()
        assert self._vocabulary is not None
        return self._vocabulary

    def vocabularies(self) -> dict[str, Vocabulary]:
        """The vocabulary of each embedding table (for export and checkpoint checks)."""
        return {"words": self.vocabulary}

    @property
    def vocab_size(self) -> int:
        return len(self.vocabulary)

    @property
    def counts(self) -> Tensor:
        """``(V,)`` int64 training counts (``<unk>`` and ``<eos>`` included)."""
        return self.vocabulary.counts

    def ids(self, split: Split) -> Tensor:
        """``(T,)`` int64 ids of a split, ``<eos>`` after each line."""
        self._read()
        return self._ids[split]

    @property
    def unk_id(self) -> int:
        return self.vocabulary[UNK]

    @property
    def eos_id(self) -> int:
        return self.vocabulary[EOS]

    # --------------------------------------------------------------- loading
    def setup(self, stage: str) -> None:
        self._read()

    def _loader(self, split: Split, batch_size: int) -> DataLoader[TokenWindow]:
        trainer = self.trainer
        rank = trainer.global_rank if trainer is not None else 0
        world_size = trainer.world_size if trainer is not None else 1
        streams = TokenStreams(
            self.ids(split), batch_size, self.bptt, rank=rank, world_size=world_size,
            name={"train": "training", "val": "validation", "test": "test"}[split],
        )
        return DataLoader(streams, batch_size=None)

    def train_dataloader(self) -> DataLoader[TokenWindow]:
        return self._loader("train", self.batch_size)

    def val_dataloader(self) -> DataLoader[TokenWindow]:
        return self._loader("val", self.eval_batch_size)

    def test_dataloader(self) -> DataLoader[TokenWindow]:
        return self._loader("test", self.eval_batch_size)
