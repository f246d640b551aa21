"""Pairs of string ids -> integer ids: vocabularies, merged duplicates, train/validation split."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from nslightning.data.pair_table import PairTable
from nslightning.data.vocabulary import Vocabulary


@dataclass
class EncodedPairs:
    """Pairs as ids: ``anchors (P,)`` and ``items (P,)`` int32, ``weights (P,)`` float32 or
    ``None`` (12 bytes per weighted pair)."""

    anchors: Tensor
    items: Tensor
    weights: Tensor | None = None

    def __len__(self) -> int:
        return int(self.anchors.numel())

    def subset(self, index: Tensor) -> EncodedPairs:
        weights = None if self.weights is None else self.weights[index]
        return EncodedPairs(self.anchors[index], self.items[index], weights)


def merge_pairs(table: PairTable, drop_self_pairs: bool) -> PairTable:
    """Merges duplicate pairs (their weights add, in file order and float64) and drops
    ``(x, x)`` if asked, with a warning that counts each. The pairs that remain keep the order
    of their first occurrence."""
    anchors, items, weights = table.anchors, table.items, table.weights
    self_pairs = 0
    if drop_self_pairs:
        other = anchors != items
        self_pairs = len(table) - int(other.sum())
        if self_pairs:
            anchors, items = anchors[other], items[other]
            weights = None if weights is None else weights[other]
    first, sums = _first_occurrences(anchors.astype(np.int64) * len(table.names) + items, weights)
    duplicates = len(anchors) - len(first)
    notes = []
    if self_pairs:
        notes.append(
            f"dropped {self_pairs} self-pair(s) (x, x): in one id space they carry no signal and "
            "would be ranked first trivially"
        )
    if duplicates:
        kept = "their weights were added" if table.weights is not None else "each is kept once"
        notes.append(f"merged {duplicates} duplicate pair(s) ({kept})")
    if notes:
        warnings.warn("; ".join(notes) + ".", stacklevel=2)
    if not len(first):
        raise ValueError("the relation holds no pairs once self-pairs are dropped.")
    return PairTable(table.names, anchors[first], items[first], sums)


def _first_occurrences(
    keys: np.ndarray, weights: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Where each distinct key first occurs, and the weights of each key summed.

    Args:
        keys: ``(P,)`` int64.
        weights: ``(P,)`` float64, or ``None``.

    Returns:
        ``(U,)`` int64 positions in ``keys``, ascending (one per distinct key), and ``(U,)``
        float64 sums of each key's weights, added in the order of ``keys`` (as a running sum
        over the file would), or ``None``.
    """
    # Stable: equal keys keep their order, so each run starts at the key's first occurrence.
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    starts = np.ones(len(keys), dtype=bool)
    np.not_equal(ordered[1:], ordered[:-1], out=starts[1:])
    del ordered
    runs = order[starts]  # (U,) first occurrence of each distinct key, by key
    appearance = np.argsort(runs)
    if weights is None:
        return runs[appearance], None
    # bincount adds one weight at a time in the order given (no pairwise summation).
    sums = np.bincount(np.cumsum(starts) - 1, weights=weights[order], minlength=len(runs))
    return runs[appearance], sums[appearance]


def build_vocabularies(
    table: PairTable, shared: bool, min_count: int
) -> tuple[Vocabulary, Vocabulary]:
    """The anchor and item vocabularies (one object when ``shared``), ordered by the number of
    pairs each id is in. ``min_count`` applies to items (to every id when ``shared``)."""
    size = len(table.names)
    item_counts = np.bincount(table.items, minlength=size)
    if shared:
        item_counts += np.bincount(table.anchors, minlength=size)
    try:
        items = Vocabulary.from_counts(_named_counts(table.names, item_counts), min_count)
    except ValueError as error:
        raise ValueError(f"item vocabulary: {error}") from None
    if shared:
        return items, items
    with_item = _vocabulary_ids(table.names, items)[table.items] >= 0
    anchor_counts = np.bincount(table.anchors[with_item], minlength=size)
    return Vocabulary.from_counts(_named_counts(table.names, anchor_counts), min_count=1), items


def _named_counts(names: list[str], counts: np.ndarray) -> dict[str, int]:
    """``{names[i]: counts[i]}`` for the ids that occur (``counts[i] > 0``)."""
    present = np.flatnonzero(counts)
    return dict(zip([names[i] for i in present.tolist()], counts[present].tolist(), strict=True))


def _vocabulary_ids(names: list[str], vocabulary: Vocabulary) -> np.ndarray:
    """``(len(names),)`` int32: the vocabulary id of each name, ``-1`` if it has none."""
    index = vocabulary.index
    return np.fromiter((index.get(name, -1) for name in names), dtype=np.int32, count=len(names))


def encode_pairs(
    table: PairTable, anchors: Vocabulary, items: Vocabulary, what: str
) -> EncodedPairs:
    """Ids of the pairs whose two ends are in the vocabularies; a warning counts the others.

    Raises:
        ValueError: no pair is left.
    """
    anchor_ids = _vocabulary_ids(table.names, anchors)[table.anchors]
    item_ids = _vocabulary_ids(table.names, items)[table.items]
    keep = (anchor_ids >= 0) & (item_ids >= 0)
    dropped = len(table) - int(keep.sum())
    if dropped == len(table):
        raise ValueError(
            f"none of the {len(table)} {what} pairs has both ids in the vocabulary (built from "
            "the training pairs with min_count); check the file and --data.min_count."
        )
    if dropped:
        first = int(np.argmin(keep))
        example = (table.names[table.anchors[first]], table.names[table.items[first]])
        warnings.warn(
            f"dropped {dropped} of {len(table)} {what} pair(s) with an id outside the vocabulary "
            f"(for example {example}); their ids never appear in the training pairs or fall "
            "below min_count.",
            stacklevel=2,
        )
    weights = None
    if table.weights is not None:
        weights = torch.from_numpy(table.weights[keep].astype(np.float32))
    anchor_ids, item_ids = anchor_ids[keep], item_ids[keep]
    return EncodedPairs(torch.from_numpy(anchor_ids), torch.from_numpy(item_ids), weights)


def split_pairs(
    pairs: EncodedPairs, fraction: float, seed: int, shared: bool
) -> tuple[EncodedPairs, EncodedPairs]:
    """Holds out a random ``fraction`` of the pairs for validation.

    A held-out pair whose anchor or item occurs in no training pair goes back to training (its
    embedding would never be trained), so the validation share can come out below
    ``fraction``; a warning says how many moved. Moving pairs into training only adds ids to
    it, so one pass leaves every validation id covered.

    Raises:
        ValueError: ``fraction`` is not in ``(0, 1)`` or no pair can be held out.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {fraction}.")
    order = torch.from_numpy(np.random.default_rng(seed).permutation(len(pairs)))
    num_val = max(1, round(fraction * len(pairs)))
    is_val = torch.zeros(len(pairs), dtype=torch.bool)
    is_val[order[:num_val]] = True
    train = ~is_val
    if shared:
        size = int(max(pairs.anchors.max(), pairs.items.max())) + 1
        seen = _occurs(torch.cat([pairs.anchors[train], pairs.items[train]]), size)
        covered = seen[pairs.anchors] & seen[pairs.items]
    else:
        anchors_seen = _occurs(pairs.anchors[train], int(pairs.anchors.max()) + 1)
        items_seen = _occurs(pairs.items[train], int(pairs.items.max()) + 1)
        covered = anchors_seen[pairs.anchors] & items_seen[pairs.items]
    is_val &= covered
    if not is_val.any():
        raise ValueError(
            "no pair can be held out for validation: every held-out pair holds an id that "
            "occurs in no other pair. Use reconstruction (val_fraction 0) or a larger relation."
        )
    if moved := num_val - int(is_val.sum()):
        warnings.warn(
            f"{moved} of {num_val} held-out pair(s) went back to training so that every "
            "validation id also occurs in a training pair.",
            stacklevel=2,
        )
    return (
        pairs.subset(torch.nonzero(~is_val).squeeze(1)),
        pairs.subset(torch.nonzero(is_val).squeeze(1)),
    )


def _occurs(ids: Tensor, size: int) -> Tensor:
    """``(size,)`` bool, ``True`` at every id in ``ids``."""
    seen = torch.zeros(size, dtype=torch.bool)
    seen[ids] = True
    return seen
