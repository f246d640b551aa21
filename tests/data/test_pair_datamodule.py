"""PairDataModule on small pair files: training batches, evaluation chunks and their filters."""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from nslightning.data.pair_datamodule import PairDataModule

NUM_ANCHORS, NUM_ITEMS = 9, 11


def relation(seed: int = 0) -> list[tuple[str, str, float]]:
    """Each anchor links to 3-6 distinct items; weights are small integers (exact in float)."""
    rng = np.random.default_rng(seed)
    rows = []
    for anchor in range(NUM_ANCHORS):
        degree = int(rng.integers(3, 7))
        for item in sorted(rng.choice(NUM_ITEMS, size=degree, replace=False).tolist()):
            rows.append((f"u{anchor}", f"w{item}", float(rng.integers(1, 5))))
    return rows


def write_pairs(path: Path, rows, weights: bool) -> Path:
    lines = [f"{a}\t{i}\t{w:g}" if weights else f"{a}\t{i}" for a, i, w in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def rows() -> list[tuple[str, str, float]]:
    return relation()


@pytest.fixture
def weighted_file(tmp_path: Path, rows) -> Path:
    return write_pairs(tmp_path / "pairs.tsv", rows, weights=True)


@pytest.fixture
def plain_file(tmp_path: Path, rows) -> Path:
    return write_pairs(tmp_path / "plain.tsv", rows, weights=False)


def decode(dm: PairDataModule, anchors, items) -> list[tuple[str, str]]:
    a_tokens, i_tokens = dm.anchor_vocabulary.tokens, dm.item_vocabulary.tokens
    return [
        (a_tokens[a], i_tokens[i]) for a, i in zip(anchors.tolist(), items.tolist(), strict=True)
    ]


def epoch_pairs(loader) -> list[tuple[int, int]]:
    pairs = []
    for batch in loader:
        pairs += list(zip(batch["anchors"].tolist(), batch["items"].tolist(), strict=True))
    return pairs


def chunk_sets(dm: PairDataModule):
    """Per chunk: anchors, set of (anchor, target) and list of (anchor, filtered item)."""
    chunks = []
    for chunk in dm.val_dataloader():
        anchors = chunk["anchors"]
        targets = chunk["targets"]
        assert targets.shape[0] == anchors.shape[0]
        target_pairs = {
            (int(anchors[r]), int(t))
            for r in range(anchors.numel())
            for t in targets[r].tolist()
            if t >= 0
        }
        # Pads only after the real targets of a row.
        for row in targets.tolist():
            real = [t for t in row if t >= 0]
            assert row == real + [-1] * (len(row) - len(real))
        rows_, items_ = chunk["filter_rows"], chunk["filter_items"]
        assert rows_.shape == items_.shape
        assert int(rows_.min()) >= 0 and int(rows_.max()) < anchors.numel()
        filtered = [
            (int(anchors[r]), int(i)) for r, i in zip(rows_.tolist(), items_.tolist(), strict=True)
        ]
        chunks.append((anchors.tolist(), target_pairs, filtered))
    return chunks


# ---------------------------------------------------------------- training batches
def test_train_batches_cover_every_pair_once_per_epoch(weighted_file: Path, rows) -> None:
    dm = PairDataModule(str(weighted_file), batch_size=4, seed=3)
    dm.setup("fit")
    loader = dm.train_dataloader()
    sizes = [len(batch["anchors"]) for batch in loader]
    assert sizes == [4] * (len(rows) // 4) + ([len(rows) % 4] if len(rows) % 4 else [])
    expected = sorted((a, i) for a, i, _ in rows)
    for _ in range(2):
        pairs = epoch_pairs(loader)
        assert len(pairs) == len(rows)
        assert sorted(decode(dm, *map(torch.tensor, zip(*pairs, strict=True)))) == expected


def test_train_batch_weights_follow_their_pairs(weighted_file: Path, rows) -> None:
    dm = PairDataModule(str(weighted_file), batch_size=5)
    weights = {(a, i): w for a, i, w in rows}
    seen = 0
    for batch in dm.train_dataloader():
        assert set(batch) == {"anchors", "items", "weights"}
        assert batch["anchors"].dtype == torch.int64 and batch["weights"].is_floating_point()
        for pair, weight in zip(
            decode(dm, batch["anchors"], batch["items"]), batch["weights"].tolist(), strict=True
        ):
            assert weights[pair] == weight
            seen += 1
    assert seen == len(rows)


def test_no_weights_without_a_weight_column(plain_file: Path) -> None:
    dm = PairDataModule(str(plain_file), batch_size=7)
    batches = list(dm.train_dataloader())
    assert all(set(batch) == {"anchors", "items"} for batch in batches)
    assert dm.train_pairs.weights is None


def test_shuffle_differs_between_epochs_and_is_reproducible(weighted_file: Path) -> None:
    dm = PairDataModule(str(weighted_file), batch_size=8, seed=11)
    loader = dm.train_dataloader()
    first = epoch_pairs(loader)
    assert epoch_pairs(loader) == first  # the order changes with the epoch, which Lightning sets
    loader.sampler.set_epoch(1)
    second = epoch_pairs(loader)
    assert first != second and sorted(first) == sorted(second)

    again = PairDataModule(str(weighted_file), batch_size=8, seed=11).train_dataloader()
    assert epoch_pairs(again) == first
    again.sampler.set_epoch(1)
    assert epoch_pairs(again) == second

    other = PairDataModule(str(weighted_file), batch_size=8, seed=12).train_dataloader()
    assert epoch_pairs(other) != first


def test_no_shuffle_is_file_order(weighted_file: Path) -> None:
    dm = PairDataModule(str(weighted_file), batch_size=8, shuffle=False)
    pairs = epoch_pairs(dm.train_dataloader())
    assert pairs == list(
        zip(dm.train_pairs.anchors.tolist(), dm.train_pairs.items.tolist(), strict=True)
    )


# ---------------------------------------------------------------- sizes and counts
def test_sizes_vocabularies_and_describe(weighted_file: Path, rows) -> None:
    dm = PairDataModule(str(weighted_file))
    anchors = {a for a, _, _ in rows}
    items = {i for _, i, _ in rows}
    assert dm.num_anchors == len(anchors) and dm.vocab_size == len(items)
    vocabularies = dm.vocabularies()
    assert set(vocabularies) == {"anchors", "items"}
    assert set(vocabularies["anchors"].tokens) == anchors
    assert set(vocabularies["items"].tokens) == items
    degrees = Counter(a for a, _, _ in rows)
    assert dm.describe() == {
        "anchors": len(anchors),
        "items": len(items),
        "train_pairs": len(rows),
        "val_pairs": len(rows),
        "max_degree": max(degrees.values()),
    }


def test_counts_are_weighted_item_frequencies(tmp_path: Path, rows) -> None:
    # A duplicated line: its weights add.
    rows = [*rows, rows[0]]
    path = write_pairs(tmp_path / "dup.tsv", rows, weights=True)
    with pytest.warns(UserWarning, match="merged 1 duplicate"):
        dm = PairDataModule(str(path))
        counts = dm.counts
    expected = Counter()
    for _, item, weight in rows:
        expected[item] += weight
    assert counts.dtype == torch.float64 and counts.shape == (dm.vocab_size,)
    assert {dm.item_vocabulary.tokens[i]: c for i, c in enumerate(counts.tolist())} == expected


def test_counts_without_weights_count_pairs(plain_file: Path, rows) -> None:
    dm = PairDataModule(str(plain_file))
    expected = Counter(item for _, item, _ in rows)
    got = dict(zip(dm.item_vocabulary.tokens, dm.counts.tolist(), strict=True))
    assert got == expected


def test_counts_use_only_training_pairs(weighted_file: Path, rows) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dm = PairDataModule(str(weighted_file), val_fraction=0.25, seed=1)
        train = dm.train_pairs
    expected = torch.zeros(dm.vocab_size, dtype=torch.float64)
    assert train.weights is not None
    for item, weight in zip(train.items.tolist(), train.weights.tolist(), strict=True):
        expected[item] += weight
    assert torch.equal(dm.counts, expected)
    assert dm.counts.sum() < sum(w for _, _, w in rows)


# ---------------------------------------------------------------- evaluation modes
def test_reconstruction_ranks_the_training_pairs(weighted_file: Path, rows) -> None:
    dm = PairDataModule(str(weighted_file), eval_chunk_size=3 * NUM_ITEMS)
    assert torch.equal(dm.val_pairs.anchors, dm.train_pairs.anchors)
    assert torch.equal(dm.val_pairs.items, dm.train_pairs.items)
    targets = set()
    for _, target_pairs, filtered in chunk_sets(dm):
        targets |= target_pairs
        # Every target is filtered too (known positive).
        assert target_pairs <= set(filtered)
    assert sorted(decode(dm, *map(torch.tensor, zip(*sorted(targets), strict=True)))) == sorted(
        (a, i) for a, i, _ in rows
    )


def test_val_fraction_holds_out_pairs(weighted_file: Path, rows) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dm = PairDataModule(str(weighted_file), val_fraction=0.3, seed=5)
        dm.setup("fit")
    train = set(decode(dm, dm.train_pairs.anchors, dm.train_pairs.items))
    val = set(decode(dm, dm.val_pairs.anchors, dm.val_pairs.items))
    assert val and not train & val
    assert train | val == {(a, i) for a, i, _ in rows}
    assert len(epoch_pairs(dm.train_dataloader())) == len(train)
    targets = set()
    for _, target_pairs, _ in chunk_sets(dm):
        targets |= target_pairs
    assert {
        (dm.anchor_vocabulary.tokens[a], dm.item_vocabulary.tokens[i]) for a, i in targets
    } == val
    # Negatives must avoid training pairs only.
    assert len(dm.train_known) == len(train)
    assert dm.describe()["val_pairs"] == len(val)


def test_val_path_drops_pairs_with_unknown_ids(tmp_path: Path, weighted_file: Path, rows) -> None:
    pairs = {(a, i) for a, i, _ in rows}
    known_pair = rows[0][:2]
    new_pair = next(("u0", i) for i in sorted({i for _, i, _ in rows}) if ("u0", i) not in pairs)
    val_file = tmp_path / "val.tsv"
    val_file.write_text(
        f"{known_pair[0]}\t{known_pair[1]}\t1\n"
        f"{new_pair[0]}\t{new_pair[1]}\t2\n"
        f"zz\t{known_pair[1]}\t3\n",
        encoding="utf-8",
    )
    dm = PairDataModule(str(weighted_file), val_path=str(val_file))
    with pytest.warns(UserWarning, match=r"dropped 1 of 3 validation pair"):
        dm.setup("validate")
    assert len(dm.train_pairs) == len(rows)
    assert decode(dm, dm.val_pairs.anchors, dm.val_pairs.items) == [known_pair, new_pair]
    # The validation-only pair is filtered as a known positive but is no negative to avoid.
    a, i = dm.anchor_vocabulary.index[new_pair[0]], dm.item_vocabulary.index[new_pair[1]]
    assert not dm.train_known.contains(torch.tensor([a]), torch.tensor([i])).item()
    assert any((a, i) in filtered for _, _, filtered in chunk_sets(dm))


@pytest.mark.parametrize(
    "chunk_size, per_chunk",
    [(1, 1), (NUM_ITEMS - 1, 1), (25, 2), (4 * NUM_ITEMS + 3, 4), (10**9, 9)],
)
def test_val_chunks_respect_eval_chunk_size(weighted_file: Path, chunk_size, per_chunk) -> None:
    dm = PairDataModule(str(weighted_file), eval_chunk_size=chunk_size)
    assert dm.vocab_size == NUM_ITEMS  # every item occurs with this seed
    chunks = chunk_sets(dm)
    sizes = [len(anchors) for anchors, _, _ in chunks]
    assert all(size == per_chunk for size in sizes[:-1])
    assert 1 <= sizes[-1] <= per_chunk
    every = [a for anchors, _, _ in chunks for a in anchors]
    assert sorted(every) == every == sorted(set(dm.val_pairs.anchors.tolist()))


@pytest.mark.parametrize("val_fraction", [0.0, 0.3])
def test_filters_hold_every_known_positive(weighted_file: Path, val_fraction: float) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dm = PairDataModule(str(weighted_file), val_fraction=val_fraction, eval_chunk_size=20)
        dm.setup("validate")
    known = set(zip(dm.train_pairs.anchors.tolist(), dm.train_pairs.items.tolist(), strict=True))
    known |= set(zip(dm.val_pairs.anchors.tolist(), dm.val_pairs.items.tolist(), strict=True))
    for anchors, _, filtered in chunk_sets(dm):
        assert len(filtered) == len(set(filtered))
        assert set(filtered) == {(a, i) for a, i in known if a in anchors}


def test_shared_vocabulary_filters_the_anchor_itself(tmp_path: Path) -> None:
    # A small hierarchy in one id space, with a self-pair that is dropped.
    text = """cat feline
cat mammal
cat animal
dog canine
dog mammal
dog animal
feline mammal
feline animal
canine mammal
canine animal
mammal animal
lion feline
lion mammal
lion animal
animal animal
"""
    edges = [tuple(line.split()) for line in text.splitlines()]
    path = tmp_path / "hier.tsv"
    path.write_text(text.replace(" ", "\t"), encoding="utf-8")
    dm = PairDataModule(str(path), shared_vocabulary=True, eval_chunk_size=2 * 7)
    with pytest.warns(UserWarning, match=r"dropped 1 self-pair"):
        dm.setup("fit")
    assert dm.anchor_vocabulary is dm.item_vocabulary
    assert dm.num_anchors == dm.vocab_size == 7
    assert len(dm.train_pairs) == len(edges) - 1
    known = set(zip(dm.train_pairs.anchors.tolist(), dm.train_pairs.items.tolist(), strict=True))
    chunks = chunk_sets(dm)
    assert [len(anchors) for anchors, _, _ in chunks][:-1] == [2] * (len(chunks) - 1)
    for anchors, _, filtered in chunks:
        assert len(filtered) == len(set(filtered))
        expected = {(a, i) for a, i in known if a in anchors} | {(a, a) for a in anchors}
        assert set(filtered) == expected


def test_separate_vocabularies_do_not_filter_the_anchor_id(tmp_path: Path) -> None:
    # Anchor id 0 and item id 0 are different things: (0, 0) must stay a competitor.
    path = tmp_path / "p.tsv"
    path.write_text("a\tx\na\ty\nb\ty\n", encoding="utf-8")
    dm = PairDataModule(str(path))
    ids = {(a, i) for _, _, filtered in chunk_sets(dm) for a, i in filtered}
    index_a, index_x = dm.anchor_vocabulary.index, dm.item_vocabulary.index
    assert ids == {
        (index_a["a"], index_x["x"]),
        (index_a["a"], index_x["y"]),
        (index_a["b"], index_x["y"]),
    }


# ---------------------------------------------------------------- errors
def test_argument_errors(weighted_file: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        PairDataModule(str(weighted_file), batch_size=0)
    with pytest.raises(ValueError, match="val_fraction or val_path, not both"):
        PairDataModule(str(weighted_file), val_fraction=0.1, val_path=str(tmp_path / "v.tsv"))
    with pytest.raises(ValueError, match="val_fraction"):
        PairDataModule(str(weighted_file), val_fraction=1.0)
    with pytest.raises(ValueError, match="val_fraction"):
        PairDataModule(str(weighted_file), val_fraction=-0.1)
    with pytest.raises(ValueError, match="eval_chunk_size"):
        PairDataModule(str(weighted_file), eval_chunk_size=0)


def test_missing_file_is_reported_on_first_use(tmp_path: Path) -> None:
    dm = PairDataModule(str(tmp_path / "missing.tsv"))
    with pytest.raises(FileNotFoundError, match=r"missing\.tsv"):
        dm.setup("fit")


def test_counts_in_one_id_space_count_both_sides(tmp_path: Path) -> None:
    path = tmp_path / "tree.tsv"
    path.write_text("leaf1\tmid\t2\nleaf2\tmid\t1\nmid\troot\t1\nleaf1\troot\t1\n")
    dm = PairDataModule(str(path), shared_vocabulary=True)
    expected = {"leaf1": 3.0, "leaf2": 1.0, "mid": 4.0, "root": 2.0}
    got = {token: float(dm.counts[dm.item_vocabulary[token]]) for token in expected}
    assert got == expected  # leaves, which are never items, can still be drawn
