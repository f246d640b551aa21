"""The skip-gram DataModule: a corpus as large token chunks, turned into windows on the device."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from nslightning.data.corpus import ENWIKI_SAMPLE
from nslightning.data.rank_shards import RankOrder
from nslightning.data.skipgram_store import skipgram_store
from nslightning.data.subsampling import keep_probabilities
from nslightning.data.token_counts import DEFAULT_COUNT_LIMIT
from nslightning.data.token_store import TokenStore
from nslightning.data.training_position import PositionedDataModule, upcoming_epoch
from nslightning.data.vocabulary import Vocabulary
from nslightning.data.windows import skipgram_windows
from nslightning.deprecation import warn_renamed
from nslightning.random_stream import RandomStream

_WINDOW_STREAM = 0x57494E  # tells this stream apart from others derived from the same seed


def window_stream_seed(seed: int, rank: int) -> int:
    """A seed for the window draws of ``rank``, unrelated to the samplers' ``seed + rank``."""
    return int(np.random.SeedSequence([seed, rank, _WINDOW_STREAM]).generate_state(1)[0])


class TokenChunks(Dataset[dict[str, Tensor]]):
    """Consecutive slices of ``chunk_size`` tokens of a token store, read from its memory map.

    Each item is ``{"tokens": (n,) int32, "sentence_ids": (n,) int64}`` with ``n <= chunk_size``.
    """

    def __init__(self, store: TokenStore, chunk_size: int) -> None:
        self.store = store
        self.chunk_size = chunk_size

    def __len__(self) -> int:
        return math.ceil(len(self.store) / self.chunk_size)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        start = index * self.chunk_size
        tokens, sentence_ids = self.store.chunk(start, start + self.chunk_size)
        return {"tokens": tokens, "sentence_ids": sentence_ids}


class SkipGramDataModule(PositionedDataModule):
    """Reads a corpus, builds the vocabulary and serves skip-gram windows.

    The corpus is encoded once into a token store in the cache folder
    (:func:`~nslightning.data.skipgram_store.skipgram_store`; ``$NSLIGHTNING_CACHE``): a flat
    ``int32`` file read through a memory map, so memory does not grow with the corpus and a
    second run on the same corpus starts at once.

    The DataLoader yields chunks of ``batch_size`` consecutive tokens; after the chunk reaches
    the training device, :meth:`on_after_batch_transfer` subsamples it and builds the dynamic
    windows there (:func:`~nslightning.data.windows.skipgram_windows`), so the host never holds
    pairs.

    Args:
        corpus: a file, folder, glob (``.gz``/``.bz2`` read transparently), or ``enwiki-sample``.
        min_count: drop tokens seen fewer times (word2vec's ``min_count``).
        max_vocab_size: keep at most this many of the most frequent tokens.
        count_limit: most distinct tokens held while counting; past it the rarest are pruned,
            as gensim's ``max_vocab_size`` does (``None``: no limit, memory grows with the
            number of distinct tokens, about 100 bytes each).
        store_workers: processes that build the token store on its first run (``None``:
            one per usable CPU, up to 8, for corpora of 32 MiB or more; 1: this process).
        vocabulary_path: a vocabulary file (``Vocabulary.save``) to use instead of building one.
        window: maximum window ``W``; each center draws its window uniformly in ``1..W``.
        sample: down-sampling threshold for frequent words (``None`` disables).
        batch_size: corpus tokens per training step.
        shuffle: visit the chunks in a new order each epoch, drawn from ``(seed, epoch)``
            (:class:`~nslightning.data.rank_shards.RankOrder`), so a resumed run repeats it.
        num_workers: DataLoader workers (chunks are views, so 0 is usually fastest).
        seed: seed of the subsampling and window draws. Each rank gets its own stream, derived
            from ``(seed, rank)`` and independent of the samplers' ``seed + rank`` streams.
        vocabulary: deprecated, use ``vocabulary_path``.
    """

    def __init__(
        self,
        corpus: str = ENWIKI_SAMPLE,
        min_count: int = 5,
        max_vocab_size: int | None = None,
        count_limit: int | None = DEFAULT_COUNT_LIMIT,
        store_workers: int | None = None,
        vocabulary_path: str | None = None,
        window: int = 5,
        sample: float | None = 1e-3,
        batch_size: int = 16384,
        shuffle: bool = True,
        num_workers: int = 0,
        seed: int = 0,
        vocabulary: str | None = None,
    ) -> None:
        super().__init__()
        if vocabulary is not None:
            warn_renamed("SkipGramDataModule", "vocabulary", "vocabulary_path")
            vocabulary_path = vocabulary
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}; word2vec uses 5.")
        if sample is not None and not sample > 0:
            raise ValueError(
                f"sample must be > 0 (e.g. 1e-3) or None to disable down-sampling, got {sample}."
            )
        if batch_size < 1:
            raise ValueError(f"batch_size (tokens per step) must be >= 1, got {batch_size}.")
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}.")
        self.save_hyperparameters()
        self.corpus_source = corpus
        self.min_count = min_count
        self.max_vocab_size = max_vocab_size
        self.count_limit = count_limit
        self.store_workers = store_workers
        self.vocabulary_path = vocabulary_path
        self.window = window
        self.sample = sample
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.num_workers = num_workers
        self.seed = seed
        self._store: TokenStore | None = None
        self._keep_prob: Tensor | None = None
        self._stream = RandomStream(seed, derive=window_stream_seed)

    # --------------------------------------------------------------- corpus and vocabulary
    @property
    def store(self) -> TokenStore:
        """The corpus's token store, opened (or built) on first use."""
        if self._store is None:
            self._store = skipgram_store(
                self.corpus_source,
                min_count=self.min_count,
                max_size=self.max_vocab_size,
                vocabulary=self.vocabulary_path,
                count_limit=self.count_limit,
                workers=self.store_workers,
            )
        return self._store

    @property
    def vocabulary(self) -> Vocabulary:
        return self.store.vocabulary

    def vocabularies(self) -> dict[str, Vocabulary]:
        """The vocabulary of each embedding table (for export)."""
        return {"words": self.vocabulary}

    @property
    def vocab_size(self) -> int:
        return len(self.vocabulary)

    @property
    def counts(self) -> Tensor:
        """``(V,)`` int64 token counts."""
        return self.vocabulary.counts

    @property
    def num_tokens(self) -> int:
        """In-vocabulary corpus tokens per epoch."""
        return len(self.store)

    # --------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        """The window stream's state and the position in the epoch's chunk order, so that a
        resumed run continues both."""
        return {**super().state_dict(), "stream": self._stream.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "stream" not in state_dict:  # a checkpoint from before positions were saved
            state_dict = {"stream": state_dict}
        super().load_state_dict(state_dict)
        self._stream.load_state_dict(state_dict["stream"])

    # --------------------------------------------------------------- loading
    def setup(self, stage: str) -> None:
        self.store  # noqa: B018 - open (or build) the store once per process
        if self.sample is not None:
            self._keep_prob = keep_probabilities(self.counts, self.sample)

    def train_dataloader(self) -> DataLoader[dict[str, Tensor]]:
        chunks = TokenChunks(self.store, self.batch_size)
        trainer = self.trainer
        rank, world_size = (trainer.global_rank, trainer.world_size) if trainer else (0, 1)
        order = RankOrder(len(chunks), self.shuffle, self.seed, rank, world_size)
        # the epoch about to run: with workers the DataLoader draws its order before
        # Lightning's own set_epoch
        order.set_epoch(upcoming_epoch(trainer))
        if (point := self.resume_point()) is not None:
            order.resume(*point)
        # generator: a new iterator draws its workers' seed from it, not from the global RNG
        return DataLoader(
            chunks,
            sampler=order,
            batch_size=None,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            generator=torch.Generator(),
        )

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if not (isinstance(batch, dict) and "tokens" in batch):
            return batch
        tokens: Tensor = batch["tokens"]
        device = tokens.device
        self._stream.set_rank(self.trainer.global_rank if self.trainer is not None else 0)
        generator = self._stream.generator(device)
        keep = None
        if self._keep_prob is not None:
            if self._keep_prob.device != device:
                self._keep_prob = self._keep_prob.to(device)
            keep = self._keep_prob
        return skipgram_windows(
            tokens, batch["sentence_ids"], self.window, generator, keep_prob=keep
        )
