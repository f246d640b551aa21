"""Pairs of string ids -> integer ids: vocabularies, merged duplicates, train/validation split."""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from nslightning.data.pair_files import PairTable
from nslightning.data.vocabulary import Vocabulary


@dataclass
class EncodedPairs:
    """Pairs as ids: ``anchors (P,)``, ``items (P,)`` long, ``weights (P,)`` float or ``None``."""

    anchors: Tensor
    items: Tensor
    weights: Tensor | None = None

    def __len__(self) -> int:
        return int(self.anchors.numel())

    def subset(self, index: Tensor) -> EncodedPairs:
        weights = None if self.weights is None else self.weights[index]
        return EncodedPairs(self.anchors[index], self.items[index], weights)


def merge_pairs(table: PairTable, drop_self_pairs: bool) -> PairTable:
    """Merges duplicate pairs (their weights add) and drops ``(x, x)`` if asked, with a warning
    that counts each."""
    merged: dict[tuple[str, str], float] = {}
    weights = table.weights if table.weights is not None else [1.0] * len(table)
    self_pairs = 0
    for anchor, item, weight in zip(table.anchors, table.items, weights, strict=True):
        if drop_self_pairs and anchor == item:
            self_pairs += 1
            continue
        key = (anchor, item)
        merged[key] = merged.get(key, 0.0) + weight
    duplicates = len(table) - self_pairs - len(merged)
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
    if not merged:
        raise ValueError("the relation holds no pairs once self-pairs are dropped.")
    anchors = [anchor for anchor, _ in merged]
    items = [item for _, item in merged]
    return PairTable(anchors, items, list(merged.values()) if table.weights is not None else None)


def build_vocabularies(
    table: PairTable, shared: bool, min_count: int
) -> tuple[Vocabulary, Vocabulary]:
    """The anchor and item vocabularies (one object when ``shared``), ordered by the number of
    pairs each id is in. ``min_count`` applies to items (to every id when ``shared``)."""
    item_counts = Counter(table.items)
    if shared:
        item_counts.update(table.anchors)
    try:
        items = Vocabulary.from_counts(item_counts, min_count=min_count)
    except ValueError as error:
        raise ValueError(f"item vocabulary: {error}") from None
    if shared:
        return items, items
    anchors = Vocabulary.from_counts(
        Counter(a for a, i in zip(table.anchors, table.items, strict=True) if i in items.index),
        min_count=1,
    )
    return anchors, items


def encode_pairs(
    table: PairTable, anchors: Vocabulary, items: Vocabulary, what: str
) -> EncodedPairs:
    """Ids of the pairs whose two ends are in the vocabularies; a warning counts the others.

    Raises:
        ValueError: no pair is left.
    """
    keep = [
        index
        for index, (anchor, item) in enumerate(zip(table.anchors, table.items, strict=True))
        if anchor in anchors.index and item in items.index
    ]
    dropped = len(table) - len(keep)
    if not keep:
        raise ValueError(
            f"none of the {len(table)} {what} pairs has both ids in the vocabulary (built from "
            "the training pairs with min_count); check the file and --data.min_count."
        )
    if dropped:
        example = next(
            (a, i)
            for a, i in zip(table.anchors, table.items, strict=True)
            if a not in anchors.index or i not in items.index
        )
        warnings.warn(
            f"dropped {dropped} of {len(table)} {what} pair(s) with an id outside the vocabulary "
            f"(for example {example}); their ids never appear in the training pairs or fall "
            "below min_count.",
            stacklevel=2,
        )
    anchor_ids = torch.tensor([anchors.index[table.anchors[i]] for i in keep], dtype=torch.int64)
    item_ids = torch.tensor([items.index[table.items[i]] for i in keep], dtype=torch.int64)
    weights = None
    if table.weights is not None:
        weights = torch.tensor([table.weights[i] for i in keep], dtype=torch.float32)
    return EncodedPairs(anchor_ids, item_ids, weights)


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
