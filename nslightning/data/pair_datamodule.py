"""The DataModule of the contrastive task: a relation of (anchor, item) pairs."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from nslightning.data.known_positives import KnownPositives
from nslightning.data.pair_encoding import (
    EncodedPairs,
    build_vocabularies,
    encode_pairs,
    merge_pairs,
    split_pairs,
)
from nslightning.data.pair_files import LEE_DOC_WORDS, read_pairs
from nslightning.data.rank_shards import EvaluationShard, RankBatchSampler
from nslightning.data.training_position import PositionedDataModule, upcoming_epoch
from nslightning.data.vocabulary import Vocabulary


class PairBatches(Dataset[dict[str, Tensor]]):
    """Training pairs fetched a batch at a time: ``dataset[list_of_indices]`` (no per-pair
    collate) gives ``anchors (B,)`` and ``items (B,)`` int64 (the pairs are kept as int32) and
    ``weights (B,)`` float32 when the relation has them."""

    def __init__(self, pairs: EncodedPairs) -> None:
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, indices: list[int]) -> dict[str, Tensor]:
        index = torch.as_tensor(indices, dtype=torch.int64)
        batch = {
            "anchors": self.pairs.anchors[index].long(),
            "items": self.pairs.items[index].long(),
        }
        if self.pairs.weights is not None:
            batch["weights"] = self.pairs.weights[index]
        return batch


class RankingChunks(Dataset[dict[str, Tensor]]):
    """Evaluation chunks: anchors, their target items, and what the ranking filters out.

    Each item is a dict with ``anchors (A,)``, ``targets (A, M)`` (``-1`` pads) and the
    filtered candidates as coordinates ``filter_rows (F,)``, ``filter_items (F,)``: every known
    positive of the anchor (training and validation pairs) and, in one id space, the anchor
    itself.

    Args:
        targets: the pairs to rank.
        known: every known pair.
        anchors_per_chunk: ``A``.
        filter_self: also filter each anchor's own id.
    """

    def __init__(
        self,
        targets: KnownPositives,
        known: KnownPositives,
        anchors_per_chunk: int,
        filter_self: bool,
    ) -> None:
        self.known = known
        self.filter_self = filter_self
        self.targets = targets
        self.anchors = targets.anchors_with_items()
        self.anchors_per_chunk = anchors_per_chunk

    def __len__(self) -> int:
        return -(-int(self.anchors.numel()) // self.anchors_per_chunk)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        start = index * self.anchors_per_chunk
        anchors = self.anchors[start : start + self.anchors_per_chunk]
        targets = self.targets.padded(anchors, int(self.targets.degree(anchors).max()))
        width = int(self.known.degree(anchors).max())
        known = self.known.padded(anchors, width)
        rows = torch.arange(anchors.numel()).unsqueeze(1).expand_as(known)
        real = known >= 0
        filter_rows, filter_items = rows[real], known[real]
        if self.filter_self:
            filter_rows = torch.cat([filter_rows, torch.arange(anchors.numel())])
            filter_items = torch.cat([filter_items, anchors])
        return {
            "anchors": anchors,
            "targets": targets,
            "filter_rows": filter_rows,
            "filter_items": filter_items,
        }


@dataclass
class Relation:
    """A relation read and encoded: vocabularies, pairs and known positives."""

    anchors: Vocabulary
    items: Vocabulary
    train: EncodedPairs
    val: EncodedPairs
    train_known: KnownPositives
    val_known: KnownPositives
    known: KnownPositives


class PairDataModule(PositionedDataModule):
    """Reads a two-sided relation, maps ids through vocabularies, serves training batches and
    ranking evaluation chunks.

    The relation is a TSV/CSV file of ``anchor, item[, weight]`` lines, or a built-in relation
    (see :mod:`nslightning.data.pair_files`). Duplicate pairs are merged (weights add); in one
    id space (``shared_vocabulary``) self-pairs ``(x, x)`` are dropped. Warnings count both.

    Evaluation is either *reconstruction* (``val_fraction=0`` and no ``val_path``: rank the
    training pairs themselves, as in Nickel & Kiela 2017) or *held-out*: a random
    ``val_fraction`` of the pairs, or the pairs of ``val_path``. Ranks are filtered: an anchor's
    other known positives (training and validation) do not count as errors.

    Args:
        path: the pair file, or a built-in relation: ``lee-doc-words``,
            ``lee-background-doc-words`` or ``gensim-hypernyms``.
        delimiter: column separator; ``,`` for ``.csv`` files, a tab otherwise.
        header: skip the first line (column names).
        shared_vocabulary: anchors and items are one id space (a hierarchy, entity links);
            needed to share one embedding table.
        min_count: drop items (all ids in one id space) that occur in fewer pairs of ``path``
            (before any held-out split).
        val_fraction: share of the pairs held out for validation; 0 for reconstruction.
        val_path: a file of validation pairs instead (pairs with ids unseen in training are
            dropped with a warning).
        batch_size: training pairs per step.
        shuffle: visit the pairs in a new random order each epoch.
        eval_chunk_size: scores computed at once during evaluation (anchors x items); bounds
            the evaluation's memory (4 bytes per score, plus a sort).
        num_workers: DataLoader workers.
        seed: seed of the split and the shuffling.
    """

    def __init__(
        self,
        path: str = LEE_DOC_WORDS,
        delimiter: str | None = None,
        header: bool = False,
        shared_vocabulary: bool = False,
        min_count: int = 1,
        val_fraction: float = 0.0,
        val_path: str | None = None,
        batch_size: int = 1024,
        shuffle: bool = True,
        eval_chunk_size: int = 1 << 24,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size (pairs per step) must be >= 1, got {batch_size}.")
        if not 0 <= val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}.")
        if val_fraction > 0 and val_path is not None:
            raise ValueError("give val_fraction or val_path, not both.")
        if eval_chunk_size < 1:
            raise ValueError(f"eval_chunk_size must be >= 1, got {eval_chunk_size}.")
        self.save_hyperparameters()
        self.path = path
        self.delimiter = delimiter
        self.header = header
        self.shared_vocabulary = shared_vocabulary
        self.min_count = min_count
        self.val_fraction = val_fraction
        self.val_path = val_path
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.eval_chunk_size = eval_chunk_size
        self.num_workers = num_workers
        self.seed = seed
        self._relation: Relation | None = None

    # --------------------------------------------------------------- the relation
    @property
    def relation(self) -> Relation:
        """Vocabularies, encoded pairs and known positives, built on first use."""
        if self._relation is None:
            self._relation = self._read_relation()
        return self._relation

    def _read_relation(self) -> Relation:
        shared = self.shared_vocabulary
        table = merge_pairs(read_pairs(self.path, self.delimiter, self.header), shared)
        anchors, items = build_vocabularies(table, shared, self.min_count)
        pairs = encode_pairs(table, anchors, items, "training")
        if self.val_fraction > 0:
            train, val = split_pairs(pairs, self.val_fraction, self.seed, shared)
        elif self.val_path is not None:
            val_table = merge_pairs(read_pairs(self.val_path, self.delimiter, self.header), shared)
            train, val = pairs, encode_pairs(val_table, anchors, items, "validation")
        else:
            train, val = pairs, pairs
        sizes = (len(anchors), len(items))
        train_known = KnownPositives(train.anchors, train.items, *sizes)
        if val is train:  # reconstruction: one set serves training, targets and filter
            val_known = known = train_known
        else:
            val_known = KnownPositives(val.anchors, val.items, *sizes)
            known = KnownPositives(
                torch.cat([train.anchors, val.anchors]), torch.cat([train.items, val.items]), *sizes
            )
        return Relation(anchors, items, train, val, train_known, val_known, known)

    @property
    def anchor_vocabulary(self) -> Vocabulary:
        return self.relation.anchors

    @property
    def item_vocabulary(self) -> Vocabulary:
        return self.relation.items

    @property
    def vocab_size(self) -> int:
        """Number of items ``V``: the id space negatives are drawn from."""
        return len(self.item_vocabulary)

    @property
    def num_anchors(self) -> int:
        return len(self.anchor_vocabulary)

    @property
    def train_pairs(self) -> EncodedPairs:
        return self.relation.train

    @property
    def val_pairs(self) -> EncodedPairs:
        """The pairs evaluation ranks (the training pairs in reconstruction)."""
        return self.relation.val

    @property
    def train_known(self) -> KnownPositives:
        """The training pairs as a set: what negatives must not be."""
        return self.relation.train_known

    @property
    def counts(self) -> Tensor:
        """``(V,)`` float64 frequencies for samplers: how often each item occurs in the
        training pairs, weighted. In one id space both sides count, so that every entity (the
        leaves of a hierarchy too) can be drawn as a negative."""
        train = self.train_pairs
        ids = torch.cat([train.items, train.anchors]) if self.shared_vocabulary else train.items
        weights = None
        if train.weights is not None:
            weights = train.weights.double()
            weights = torch.cat([weights, weights]) if self.shared_vocabulary else weights
        return torch.bincount(ids, weights=weights, minlength=self.vocab_size).double()

    def vocabularies(self) -> dict[str, Vocabulary]:
        """The vocabulary of each embedding table (for export)."""
        return {"anchors": self.anchor_vocabulary, "items": self.item_vocabulary}

    # --------------------------------------------------------------- loading
    def setup(self, stage: str) -> None:
        self.relation  # noqa: B018 - read the relation once per process

    def _rank(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def train_dataloader(self) -> DataLoader[dict[str, Tensor]]:
        rank, world_size = self._rank()
        batches = RankBatchSampler(
            len(self.train_pairs), self.batch_size, self.shuffle, self.seed, rank, world_size
        )
        # The epoch about to run (with workers the DataLoader draws its order before
        # Lightning's own set_epoch); a resumed run continues its epoch's order and position.
        batches.set_epoch(upcoming_epoch(self.trainer))
        if (point := self.resume_point()) is not None:
            batches.resume(*point)
        # generator: a new iterator draws its workers' seed from it, not from the global RNG
        return DataLoader(
            PairBatches(self.train_pairs),
            sampler=batches,
            batch_size=None,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            generator=torch.Generator(),
        )

    def val_dataloader(self) -> DataLoader[dict[str, Tensor]]:
        rank, world_size = self._rank()
        targets = self.relation.val_known
        evaluated = targets.anchors_with_items().numel()
        if evaluated < world_size:
            raise ValueError(
                f"only {evaluated} anchors have pairs to rank, fewer than the {world_size} "
                "processes that share the evaluation: use fewer devices, or more validation "
                "pairs (--data.val_fraction)."
            )
        # at least one chunk per rank
        per_chunk = max(1, min(self.eval_chunk_size // self.vocab_size, evaluated // world_size))
        chunks = RankingChunks(targets, self.relation.known, per_chunk, self.shared_vocabulary)
        return DataLoader(
            EvaluationShard(chunks, rank, world_size),
            batch_size=None,
            num_workers=self.num_workers,
        )

    def describe(self) -> dict[str, int]:
        """Sizes of the relation, for logs and benchmarks."""
        return {
            "anchors": self.num_anchors,
            "items": self.vocab_size,
            "train_pairs": len(self.train_pairs),
            "val_pairs": len(self.val_pairs),
            "max_degree": self.train_known.max_degree,
        }
