"""PairDataModule's int32/float32 pairs against a plain reference of their semantics, and their
size: the reference below reads, merges, builds vocabularies, encodes and splits with Python
dicts and lists, as the data module did before it held arrays."""

from __future__ import annotations

import csv
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from nslightning.data.pair_datamodule import PairDataModule
from nslightning.data.pair_encoding import EncodedPairs
from nslightning.data.vocabulary import Vocabulary

Row = tuple[str, str, float | None]
Pairs = list[tuple[int, int, float | None]]


# ---------------------------------------------------------------- the reference
def reference_rows(source: str) -> list[Row]:
    """The pairs of a built-in relation or of a tab-separated file, in file order."""
    if source == "lee-doc-words":
        from gensim.parsing.preprocessing import STOPWORDS
        from gensim.test.utils import datapath
        from gensim.utils import simple_preprocess

        rows: list[Row] = []
        for prefix, name in (("bg", "lee_background.cor"), ("lee", "lee.cor")):
            text = Path(datapath(name)).read_bytes().decode("latin-1")
            for number, line in enumerate(text.splitlines()):
                words = Counter(w for w in simple_preprocess(line) if w not in STOPWORDS)
                rows += [(f"{prefix}:{number}", w, float(c)) for w, c in sorted(words.items())]
        return rows
    if source == "gensim-hypernyms":
        from gensim.test.utils import datapath

        path = datapath("poincare_hypernyms_large.tsv")
        with open(path, encoding="utf-8", newline="") as handle:
            return [(row[0], row[1], None) for row in csv.reader(handle, delimiter="\t") if row]
    rows = []
    for line in Path(source).read_text(encoding="utf-8").splitlines():
        fields = [field.strip() for field in line.split("\t")]
        if any(fields):
            rows.append((fields[0], fields[1], float(fields[2]) if len(fields) == 3 else None))
    return rows


@dataclass
class Expected:
    anchors: Vocabulary
    items: Vocabulary
    train: Pairs
    val: Pairs
    notes: list[list[str]]  # per expected warning, in order: what it must state


def merge(rows: list[Row], shared: bool) -> tuple[dict[tuple[str, str], float | None], list[str]]:
    """Duplicates merged in first-seen order (weights added), self-pairs dropped in one id
    space; the counts the warning must give (none: no warning)."""
    merged: dict[tuple[str, str], float | None] = {}
    self_pairs = 0
    for anchor, item, weight in rows:
        if shared and anchor == item:
            self_pairs += 1
        elif weight is None:
            merged[anchor, item] = None
        else:
            merged[anchor, item] = (merged.get((anchor, item)) or 0.0) + weight
    duplicates = len(rows) - self_pairs - len(merged)
    notes = [f"dropped {self_pairs} self-pair(s)"] if self_pairs else []
    notes += [f"merged {duplicates} duplicate pair(s)"] if duplicates else []
    return merged, notes


def encode(
    merged: dict[tuple[str, str], float | None], anchors: Vocabulary, items: Vocabulary, what: str
) -> tuple[Pairs, str]:
    pairs: Pairs = []
    outside = []
    for (anchor, item), weight in merged.items():
        if anchor in anchors.index and item in items.index:
            pairs.append((anchors.index[anchor], items.index[item], weight))
        else:
            outside.append((anchor, item))
    note = ""
    if outside:
        note = f"dropped {len(outside)} of {len(merged)} {what} pair(s) with an id outside the "
        note += f"vocabulary (for example {outside[0]})"
    return pairs, note


def split(pairs: Pairs, fraction: float, seed: int, shared: bool) -> tuple[Pairs, Pairs, str]:
    order = np.random.default_rng(seed).permutation(len(pairs)).tolist()
    held = set(order[: max(1, round(fraction * len(pairs)))])
    train_anchors = {a for k, (a, _, _) in enumerate(pairs) if k not in held}
    train_items = {i for k, (_, i, _) in enumerate(pairs) if k not in held}
    if shared:
        train_anchors = train_items = train_anchors | train_items
    val = {k for k in held if pairs[k][0] in train_anchors and pairs[k][1] in train_items}
    moved = len(held) - len(val)
    note = f"{moved} of {len(held)} held-out pair(s) went back to training" if moved else ""
    return (
        [p for k, p in enumerate(pairs) if k not in val],
        [p for k, p in enumerate(pairs) if k in val],
        note,
    )


def reference(
    path: str, shared: bool, min_count: int, val_fraction: float, val_path: str | None, seed: int
) -> Expected:
    merged, merge_note = merge(reference_rows(path), shared)
    item_counts = Counter(i for _, i in merged)
    if shared:
        item_counts.update(a for a, _ in merged)
    items = Vocabulary.from_counts(item_counts, min_count=min_count)
    anchors = items
    if not shared:
        anchors = Vocabulary.from_counts(Counter(a for a, i in merged if i in items.index), 1)
    pairs, encode_note = encode(merged, anchors, items, "training")
    notes = [merge_note, [encode_note]]
    if val_fraction > 0:
        train, val, moved_note = split(pairs, val_fraction, seed, shared)
        notes.append([moved_note])
    elif val_path is not None:
        val_merged, val_merge_note = merge(reference_rows(val_path), shared)
        train, (val, val_encode_note) = pairs, encode(val_merged, anchors, items, "validation")
        notes += [val_merge_note, [val_encode_note]]
    else:
        train, val = pairs, pairs
    return Expected(anchors, items, train, val, [note for note in notes if any(note)])


# ---------------------------------------------------------------- messy files
def write_messy(path: Path, seed: int, num_lines: int, weights: bool) -> Path:
    """Skewed ids (many duplicates, runs of more than eight), self-pairs, weights that are not
    exact in binary, stray spaces and blank lines."""
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(num_lines):
        anchor = f"n{int(rng.zipf(1.6)) % 40}"
        item = anchor if rng.random() < 0.05 else f"n{int(rng.zipf(1.4)) % 60}"
        weight = float(rng.choice([0.1, 0.2, 0.3, 1.0, 1e-3, 7.7, 1 / 3]))
        line = f"{anchor}\t {item}" + (f"\t{weight!r}" if weights else "")
        lines.append(line + ("\n" if rng.random() < 0.02 else ""))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def messy(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("messy")
    return {
        "weighted": str(write_messy(folder / "weighted.tsv", 0, 3000, weights=True)),
        "plain": str(write_messy(folder / "plain.tsv", 1, 2000, weights=False)),
        "val": str(write_messy(folder / "val.tsv", 2, 300, weights=True)),
    }


def triples(pairs: EncodedPairs) -> Pairs:
    weights = [None] * len(pairs) if pairs.weights is None else pairs.weights.tolist()
    return list(zip(pairs.anchors.tolist(), pairs.items.tolist(), weights, strict=True))


def as_float32(pairs: Pairs) -> Pairs:
    """The weights rounded as encoding rounds them: float64 sums, then float32."""
    if not pairs or pairs[0][2] is None:
        return pairs
    rounded = torch.tensor([w for _, _, w in pairs], dtype=torch.float32).tolist()
    return [(a, i, w) for (a, i, _), w in zip(pairs, rounded, strict=True)]


@pytest.mark.parametrize(
    "source, shared, min_count, val_fraction, use_val_path",
    [
        ("lee-doc-words", False, 2, 0.2, False),
        ("lee-doc-words", True, 1, 0.0, False),
        ("gensim-hypernyms", True, 1, 0.0, False),
        ("gensim-hypernyms", False, 2, 0.0, False),
        ("weighted", False, 2, 0.0, True),
        ("weighted", True, 1, 0.0, True),
        ("weighted", True, 2, 0.25, False),
        ("weighted", False, 3, 0.3, False),
        ("plain", False, 1, 0.3, False),
        ("plain", True, 2, 0.0, False),
    ],
)
def test_same_pairs_vocabularies_split_and_warnings_as_the_reference(
    messy: dict[str, str],
    source: str,
    shared: bool,
    min_count: int,
    val_fraction: float,
    use_val_path: bool,
) -> None:
    path = messy.get(source, source)
    val_path = messy["val"] if use_val_path else None
    expected = reference(path, shared, min_count, val_fraction, val_path, seed=3)
    dm = PairDataModule(
        path,
        shared_vocabulary=shared,
        min_count=min_count,
        val_fraction=val_fraction,
        val_path=val_path,
        seed=3,
    )
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        dm.setup("fit")
    messages = [str(w.message) for w in record]
    assert len(messages) == len(expected.notes)
    for message, notes in zip(messages, expected.notes, strict=True):
        assert all(note in message for note in notes), (message, notes)
    assert dm.anchor_vocabulary == expected.anchors
    assert dm.item_vocabulary == expected.items
    assert (dm.anchor_vocabulary is dm.item_vocabulary) == shared
    train, val = dm.train_pairs, dm.val_pairs
    assert triples(train) == as_float32(expected.train)  # bit for bit: float == float32 value
    assert triples(val) == as_float32(expected.val)
    for pairs in (train, val):
        assert pairs.anchors.dtype == pairs.items.dtype == torch.int32
        assert pairs.weights is None or pairs.weights.dtype == torch.float32


# ---------------------------------------------------------------- size
def test_a_million_pairs_take_12_bytes_each(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    num_lines = 10**6
    anchors = rng.integers(0, 50_000, num_lines).tolist()
    items = rng.integers(0, 20_000, num_lines).tolist()
    weights = rng.integers(1, 5, num_lines).tolist()
    path = tmp_path / "big.tsv"
    path.write_text(
        "".join(f"u{a}\tw{i}\t{w}\n" for a, i, w in zip(anchors, items, weights, strict=True)),
        encoding="utf-8",
    )
    dm = PairDataModule(str(path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a few hundred duplicates merge
        dm.setup("fit")
    pairs = dm.train_pairs
    num_pairs = len(pairs)
    assert num_pairs > 0.99 * num_lines
    assert pairs.weights is not None
    arrays = (pairs.anchors, pairs.items, pairs.weights)
    assert all(type(array) is torch.Tensor for array in arrays)
    assert [array.dtype for array in arrays] == [torch.int32, torch.int32, torch.float32]
    assert sum(array.nbytes for array in arrays) == 12 * num_pairs
    # No Python container per pair anywhere in the module's state (vocabularies hold one entry
    # per distinct id: 50,000 at most).
    relation = dm.relation
    holders = [dm, relation, pairs, dm.val_pairs, relation.anchors, relation.items]
    for holder in holders:
        for name, value in vars(holder).items():
            if isinstance(value, list | tuple | dict | set):
                assert len(value) <= 50_000, f"{type(holder).__name__}.{name}"
    # Batches still carry int64 ids, as the task's embedding lookups expect.
    batch = next(iter(dm.train_dataloader()))
    assert batch["anchors"].dtype == batch["items"].dtype == torch.int64
