"""Pairs of string ids held as arrays: each distinct string is stored once, pairs are codes."""

from __future__ import annotations

from array import array
from dataclasses import dataclass

import numpy as np


@dataclass
class PairTable:
    """Pairs of string ids: ``names[anchors[p]]`` and ``names[items[p]]`` are the ``p``-th pair.

    Attributes:
        names: the distinct ids of both columns, each once, in order of first appearance.
        anchors: ``(P,)`` int32 indices into ``names``, the first column.
        items: ``(P,)`` int32 indices into ``names``, the second column.
        weights: ``(P,)`` float64, the third column, or ``None`` when the relation has two
            columns. Float64 as read, so that merged duplicates add without rounding; encoded
            pairs store float32.
    """

    names: list[str]
    anchors: np.ndarray
    items: np.ndarray
    weights: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.anchors)


class PairTableBuilder:
    """Collects pairs one at a time into a :class:`PairTable`: each string id is looked up once
    in a dict (string -> code) and the pair appended as two int32 codes (and a float64
    weight), so that memory grows by 8 (16) bytes per pair plus the distinct strings."""

    def __init__(self) -> None:
        self._codes: dict[str, int] = {}
        self._anchors = array("i")
        self._items = array("i")
        self._weights = array("d")

    def __len__(self) -> int:
        return len(self._anchors)

    def add(self, anchor: str, item: str, weight: float | None = None) -> None:
        """Appends a pair; give a weight with every pair or with none."""
        self._anchors.append(self._code(anchor))
        self._items.append(self._code(item))
        if weight is not None:
            self._weights.append(weight)

    def _code(self, name: str) -> int:
        code = self._codes.get(name)
        if code is None:
            code = self._codes[name] = len(self._codes)
        return code

    def build(self) -> PairTable:
        """The pairs added so far; weights are ``None`` when no pair had one."""
        if len(self._weights) not in (0, len(self)):
            raise ValueError(f"{len(self._weights)} weights for {len(self)} pairs.")
        weights = np.frombuffer(self._weights, dtype=np.float64).copy() if self._weights else None
        return PairTable(
            list(self._codes),
            np.frombuffer(self._anchors, dtype=np.intc).astype(np.int32),
            np.frombuffer(self._items, dtype=np.intc).astype(np.int32),
            weights,
        )
