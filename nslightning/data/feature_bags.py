"""Feature bags: the per-entity inputs of an encoder such as ``BagOfFeatures``, read from a side
file or a built-in.

A side file has one line per entity: its id, a tab (or the given delimiter), then its features
separated by white space::

    doc1<TAB>storm rain storm wind
    doc2<TAB>election vote

A feature that appears several times on a line counts that many times in the entity's bag
(``doc1`` holds ``storm`` twice, so a mean over the bag weights it twice). Blank lines are
skipped; ``.gz``/``.bz2`` files are read transparently.

Built-in side data, made from files that gensim ships (offline):

- ``lee-doc-bags``: every document of gensim's Lee corpus, the 300 background documents
  ``bg:0`` ... ``bg:299`` and the 50 judged ones ``lee:0`` ... ``lee:49``, each with its own
  words as features, tokenised as the relations ``lee-doc-words`` and
  ``lee-background-doc-words`` are (:func:`nslightning.data.pair_files.lee_documents`), every
  occurrence kept.
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nslightning.data.corpus import read_lines
from nslightning.data.pair_files import lee_documents

LEE_DOC_BAGS = "lee-doc-bags"
_FORMAT = "'id<TAB>feature feature ...'"


def builtin_feature_bags() -> tuple[str, ...]:
    """Names accepted in place of a side file."""
    return (LEE_DOC_BAGS,)


@dataclass
class FeatureBags:
    """The bags of features of ``E`` entities over a vocabulary of ``F`` features, as CSR.

    Attributes:
        source: the file or built-in name that was read (for messages).
        names: ``E`` entity ids, in file order; entity ``e`` is row ``e``.
        features: ``F`` distinct features, in order of first appearance in the file; feature
            ``f`` is column ``f``.
        indices: ``(T,)`` int64 feature ids of every bag, concatenated in file order, each
            occurrence once (``T`` = total bag size).
        offsets: ``(E + 1,)`` int64, non-decreasing, ``offsets[0] == 0``: the bag of entity
            ``e`` is ``indices[offsets[e]:offsets[e + 1]]``.
    """

    source: str
    names: list[str]
    features: list[str]
    indices: np.ndarray
    offsets: np.ndarray
    _rows: dict[str, int] | None = field(default=None, init=False, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.names)

    def bag(self, entity: int) -> list[str]:
        """The features of entity (row) ``entity``, with repeats, in file order."""
        start, end = self.offsets[entity], self.offsets[entity + 1]
        return [self.features[f] for f in self.indices[start:end].tolist()]

    def rows(self, names: Sequence[str]) -> tuple[list[int], list[str]]:
        """The row of each name (``-1`` where the side data lacks it), and the lacking names."""
        if self._rows is None:
            self._rows = {name: row for row, name in enumerate(self.names)}
        found = [self._rows.get(name, -1) for name in names]
        return found, [name for name, row in zip(names, found, strict=True) if row < 0]

    def padded(self, pad: int) -> np.ndarray:
        """``(E, L)`` int64: row ``e`` holds the bag of entity ``e`` then ``pad`` up to ``L``,
        the size of the largest bag."""
        lengths = np.diff(self.offsets)
        table = np.full((len(self), int(lengths.max(initial=0))), pad, dtype=np.int64)
        entity = np.repeat(np.arange(len(self)), lengths)
        slot = np.arange(len(self.indices)) - np.repeat(self.offsets[:-1], lengths)
        table[entity, slot] = self.indices
        return table


class _Builder:
    """Collects bags a line at a time: each feature string is looked up once in a dict and
    stored as an int64 code."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines: dict[str, int] = {}  # entity -> the line that named it
        self.features: dict[str, int] = {}
        self.indices = array("q")
        self.offsets = array("q", [0])

    def add(self, name: str, words: Sequence[str], number: int) -> None:
        if not name:
            raise ValueError(
                f"{self.source}:{number}: the id is empty; start the line with the entity's id "
                f"({_FORMAT})."
            )
        if not words:
            raise ValueError(
                f"{self.source}:{number}: id {name!r} has no features; give it at least one "
                f"feature after the delimiter ({_FORMAT}) or remove the line."
            )
        if name in self.lines:
            raise ValueError(
                f"{self.source}:{number}: id {name!r} already has a line ({self.source}:"
                f"{self.lines[name]}); give each id one line that lists all its features."
            )
        self.lines[name] = number
        codes = self.features
        self.indices.extend(codes.setdefault(word, len(codes)) for word in words)
        self.offsets.append(len(self.indices))

    def build(self) -> FeatureBags:
        if not self.lines:
            raise ValueError(
                f"side file {self.source} holds no entities; give one line {_FORMAT} per entity."
            )
        return FeatureBags(
            self.source,
            list(self.lines),
            list(self.features),
            np.frombuffer(self.indices, dtype=np.int64).copy(),
            np.frombuffer(self.offsets, dtype=np.int64).copy(),
        )


def read_feature_bags(source: str | os.PathLike[str], delimiter: str = "\t") -> FeatureBags:
    """Reads the bags of features of a side file or a built-in (see the module).

    Args:
        source: a built-in name (:func:`builtin_feature_bags`) or a file of
            ``id<TAB>feature feature ...`` lines (``.gz``/``.bz2`` read transparently).
        delimiter: what separates the id from its features (the first occurrence on a line);
            the features are separated by any white space. Ignored for built-ins.

    Returns:
        the bags; entities in file order, features in order of first appearance.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: a line without the delimiter, with an empty id or no feature, an id that
            already had a line, or a file without entities; the message names the file and line.
    """
    text = os.fspath(source)
    if text == LEE_DOC_BAGS:
        return _lee_document_bags()
    if not delimiter:
        raise ValueError("delimiter must be a non-empty string, e.g. '\\t'.")
    path = Path(text).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"side file {text!r} not found: give a file of {_FORMAT} lines (one per entity) or "
            f"one of {', '.join(builtin_feature_bags())}."
        )
    bags = _Builder(str(path))
    shown = "<TAB>" if delimiter == "\t" else repr(delimiter)
    for number, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            continue
        name, found, rest = line.partition(delimiter)
        if not found:
            raise ValueError(
                f"{path}:{number}: expected {_FORMAT}, got {line!r} without {shown}; separate "
                "the id from its features with the delimiter (BagOfFeatures(delimiter=...))."
            )
        bags.add(name.strip(), rest.split(), number)
    return bags.build()


def _lee_document_bags() -> FeatureBags:
    bags = _Builder(LEE_DOC_BAGS)
    for number, (name, words) in enumerate(lee_documents(), start=1):
        bags.add(name, words, number)
    return bags.build()
