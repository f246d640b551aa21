"""The language-model DataModule: train/valid/test text as token streams for TBPTT."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from nslightning.data.corpus import ENWIKI_SAMPLE
from nslightning.data.language_model_store import LanguageModelText, language_model_store
from nslightning.data.language_model_text import EOS, UNK
from nslightning.data.token_counts import DEFAULT_COUNT_LIMIT
from nslightning.data.token_store import TokenStore
from nslightning.data.token_streams import TokenStreams, TokenWindow
from nslightning.data.training_position import PositionedDataModule, upcoming_epoch
from nslightning.data.vocabulary import Vocabulary
from nslightning.deprecation import warn_renamed

Split = Literal["train", "val", "test"]


class LanguageModelDataModule(PositionedDataModule):
    """Reads a text, builds the vocabulary on its training part and serves TBPTT windows.

    The text is either one corpus split by document (line) into train, validation and test by
    :func:`~nslightning.data.language_model_text.split_assignment` (the Wikipedia sample by default:
    106 articles, about 453K tokens), or three corpora (``corpus`` for training plus
    ``val_corpus`` and ``test_corpus``). The vocabulary comes from the training part only
    (``<unk>`` replaces rarer and unseen tokens, ``<eos>`` ends each line) and is sorted by
    count, as the log-uniform sampler expects. The ids are written once into a token store in
    the cache folder (``$NSLIGHTNING_CACHE``), one section per split, and read through a memory
    map (:func:`~nslightning.data.language_model_store.language_model_store`), so memory does
    not grow with the text and a second run starts at once.

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
        count_limit: most distinct tokens held while counting; past it the rarest are pruned,
            as gensim's ``max_vocab_size`` does (``None``: no limit).
        store_workers: processes that build the token store on its first run (``None``:
            one per usable CPU, up to 8, for corpora of 32 MiB or more; 1: this process).
        vocabulary_path: a vocabulary file (``Vocabulary.save``, e.g. from an earlier run) to use
            instead of building one; it must hold ``<unk>`` and ``<eos>``.
        batch_size: training streams per process.
        eval_batch_size: validation and test streams per process.
        bptt: window length (steps of back-propagation through time).
        vocabulary: deprecated, use ``vocabulary_path``.
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
        count_limit: int | None = DEFAULT_COUNT_LIMIT,
        store_workers: int | None = None,
        vocabulary_path: str | None = None,
        batch_size: int = 32,
        eval_batch_size: int = 10,
        bptt: int = 35,
        vocabulary: str | None = None,
    ) -> None:
        super().__init__()
        if vocabulary is not None:
            warn_renamed("LanguageModelDataModule", "vocabulary", "vocabulary_path")
            vocabulary_path = vocabulary
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
        self.count_limit = count_limit
        self.store_workers = store_workers
        self.vocabulary_path = vocabulary_path
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.bptt = bptt
        self._store: TokenStore | None = None

    # --------------------------------------------------------------- text and vocabulary
    @property
    def store(self) -> TokenStore:
        """The text's token store (sections ``train``, ``val``, ``test``), built on first use."""
        if self._store is None:
            text = LanguageModelText(
                self.corpus, self.val_corpus, self.test_corpus, self.val_fraction,
                self.test_fraction, self.split_seed, self.min_count, self.max_vocab_size,
                self.count_limit,
            )
            self._store = language_model_store(text, self.vocabulary_path, self.store_workers)
        return self._store

    @property
    def vocabulary(self) -> Vocabulary:
        """The vocabulary (the text is read on first use)."""
        return self.store.vocabulary

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

    def ids(self, split: Split) -> np.ndarray:
        """``(T,)`` int32 ids of a split, ``<eos>`` after each line: a read-only slice of the
        store's memory map."""
        return self.store.section(split)

    @property
    def unk_id(self) -> int:
        return self.vocabulary[UNK]

    @property
    def eos_id(self) -> int:
        return self.vocabulary[EOS]

    # --------------------------------------------------------------- loading
    def setup(self, stage: str) -> None:
        self.store  # noqa: B018 - open (or build) the store once per process

    def _loader(self, split: Split, batch_size: int) -> DataLoader[TokenWindow]:
        trainer = self.trainer
        rank = trainer.global_rank if trainer is not None else 0
        world_size = trainer.world_size if trainer is not None else 1
        streams = TokenStreams(
            self.ids(split), batch_size, self.bptt, rank=rank, world_size=world_size,
            name={"train": "training", "val": "validation", "test": "test"}[split],
        )
        point = self.resume_point() if split == "train" else None
        if point is not None and point[0] == upcoming_epoch(trainer):
            streams.resume(point[1])
        # generator: a new iterator draws its workers' seed from it, not from the global RNG
        return DataLoader(streams, batch_size=None, generator=torch.Generator())

    def train_dataloader(self) -> DataLoader[TokenWindow]:
        return self._loader("train", self.batch_size)

    def val_dataloader(self) -> DataLoader[TokenWindow]:
        return self._loader("val", self.eval_batch_size)

    def test_dataloader(self) -> DataLoader[TokenWindow]:
        return self._loader("test", self.eval_batch_size)
