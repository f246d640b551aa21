"""merge_pairs, build_vocabularies, encode_pairs and split_pairs."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from nslightning.data.pair_encoding import (
    EncodedPairs,
    build_vocabularies,
    encode_pairs,
    merge_pairs,
    split_pairs,
)
from nslightning.data.pair_table import PairTable, PairTableBuilder


def make_table(
    anchors: list[str], items: list[str], weights: list[float] | None = None
) -> PairTable:
    builder = PairTableBuilder()
    for index, (anchor, item) in enumerate(zip(anchors, items, strict=True)):
        builder.add(anchor, item, None if weights is None else weights[index])
    return builder.build()


def pairs_of(table: PairTable) -> list[tuple[str, str]]:
    names = table.names
    return [
        (names[a], names[i])
        for a, i in zip(table.anchors.tolist(), table.items.tolist(), strict=True)
    ]


def as_dict(table: PairTable) -> dict[tuple[str, str], float | None]:
    weights = table.weights.tolist() if table.weights is not None else [None] * len(table)
    result = dict(zip(pairs_of(table), weights, strict=True))
    assert len(result) == len(table), "pairs are not unique"
    return result


# ---------------------------------------------------------------- merge_pairs
def test_duplicates_merge_and_weights_add() -> None:
    table = make_table(
        ["a", "b", "a", "a", "c"], ["x", "y", "x", "x", "x"], [1.0, 2.0, 0.5, 3.0, 4.0]
    )
    with pytest.warns(UserWarning, match=r"merged 2 duplicate pair\(s\) \(their weights were"):
        merged = merge_pairs(table, drop_self_pairs=False)
    assert as_dict(merged) == {("a", "x"): 4.5, ("b", "y"): 2.0, ("c", "x"): 4.0}
    # First occurrence order is kept.
    assert pairs_of(merged) == [
        ("a", "x"),
        ("b", "y"),
        ("c", "x"),
    ]


def test_duplicates_without_weights_are_kept_once() -> None:
    table = make_table(["a", "a", "b", "a"], ["x", "x", "y", "x"])
    with pytest.warns(UserWarning, match=r"merged 2 duplicate pair\(s\) \(each is kept once\)"):
        merged = merge_pairs(table, drop_self_pairs=False)
    assert merged.weights is None
    assert pairs_of(merged) == [("a", "x"), ("b", "y")]


def test_no_warning_without_duplicates_or_self_pairs() -> None:
    table = make_table(["a", "b"], ["b", "a"], [1.0, 2.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        merged = merge_pairs(table, drop_self_pairs=True)
    assert as_dict(merged) == {("a", "b"): 1.0, ("b", "a"): 2.0}


def test_self_pairs_dropped_only_when_asked() -> None:
    table = make_table(["a", "a", "b", "b"], ["a", "b", "b", "b"])
    with pytest.warns(UserWarning) as record:
        kept = merge_pairs(table, drop_self_pairs=False)
    messages = " ".join(str(w.message) for w in record)
    assert "self-pair" not in messages and "merged 1 duplicate" in messages
    assert set(as_dict(kept)) == {("a", "a"), ("a", "b"), ("b", "b")}

    with pytest.warns(UserWarning) as record:
        dropped = merge_pairs(table, drop_self_pairs=True)
    messages = " ".join(str(w.message) for w in record)
    # The two (b, b) count as self-pairs, not as a duplicate.
    assert "dropped 3 self-pair(s)" in messages
    assert "duplicate" not in messages
    assert set(as_dict(dropped)) == {("a", "b")}


def test_merged_weights_are_a_running_sum_in_file_order() -> None:
    # Many duplicates of six pairs: each sum must be the float64 running sum over the file, bit
    # for bit (pairwise summation, as np.add.reduceat does, differs in the last bits).
    rng = np.random.default_rng(0)
    anchors = [f"a{k}" for k in rng.integers(0, 3, 3000).tolist()]
    items = [f"x{k}" for k in rng.integers(0, 2, 3000).tolist()]
    weights = (rng.random(3000) * 10).tolist()
    expected: dict[tuple[str, str], float] = {}
    for anchor, item, weight in zip(anchors, items, weights, strict=True):
        expected[anchor, item] = expected.get((anchor, item), 0.0) + weight
    with pytest.warns(UserWarning, match="merged 2994 duplicate"):
        merged = merge_pairs(make_table(anchors, items, weights), drop_self_pairs=False)
    assert pairs_of(merged) == list(expected)
    assert merged.weights is not None and merged.weights.tolist() == list(expected.values())


def test_only_self_pairs_is_an_error() -> None:
    table = make_table(["a", "b"], ["a", "b"])
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="no pairs"):
        merge_pairs(table, drop_self_pairs=True)


# ---------------------------------------------------------------- vocabularies
def test_separate_vocabularies_order_by_pair_count() -> None:
    table = make_table(["a", "b", "b", "c", "c", "c"], ["x", "x", "y", "x", "y", "z"])
    anchors, items = build_vocabularies(table, shared=False, min_count=1)
    assert anchors is not items
    assert anchors.tokens == ["c", "b", "a"]
    assert anchors.counts.tolist() == [3, 2, 1]
    assert items.tokens == ["x", "y", "z"]
    assert items.counts.tolist() == [3, 2, 1]


def test_vocabulary_counts_pairs_not_weights() -> None:
    table = make_table(["a", "b", "c"], ["x", "y", "y"], [100.0, 1.0, 1.0])
    _, items = build_vocabularies(table, shared=False, min_count=1)
    assert items.tokens == ["y", "x"]


def test_min_count_drops_rare_items_and_their_pairs() -> None:
    table = make_table(["a", "a", "b", "c", "d"], ["x", "y", "x", "x", "y2"])
    anchors, items = build_vocabularies(table, shared=False, min_count=2)
    assert items.tokens == ["x"]
    # "d" is only in a pair with a dropped item: no anchor id for it.
    assert sorted(anchors.tokens) == ["a", "b", "c"]
    with pytest.warns(UserWarning, match=r"dropped 2 of 5 training pair"):
        pairs = encode_pairs(table, anchors, items, "training")
    assert len(pairs) == 3
    decoded = {
        (anchors.tokens[a], items.tokens[i])
        for a, i in zip(pairs.anchors.tolist(), pairs.items.tolist(), strict=True)
    }
    assert decoded == {("a", "x"), ("b", "x"), ("c", "x")}


def test_min_count_applies_to_every_id_when_shared() -> None:
    # Counts in one id space: a=3 (2 as anchor, 1 as item), b=2, c=1.
    table = make_table(["a", "a", "b"], ["b", "c", "a"])
    vocab, same = build_vocabularies(table, shared=True, min_count=2)
    assert vocab is same
    assert vocab.tokens == ["a", "b"]
    assert vocab.counts.tolist() == [3, 2]


def test_empty_vocabulary_error() -> None:
    table = make_table(["a", "b"], ["x", "y"])
    with pytest.raises(ValueError, match=r"item vocabulary: .*min_count=2 leaves an empty"):
        build_vocabularies(table, shared=False, min_count=2)
    with pytest.raises(ValueError, match="item vocabulary"):
        build_vocabularies(table, shared=True, min_count=5)


def test_shared_vocabulary_is_one_object_with_anchors_and_items() -> None:
    table = make_table(["a", "b", "c"], ["x", "x", "a"])
    anchors, items = build_vocabularies(table, shared=True, min_count=1)
    assert anchors is items
    assert set(anchors.tokens) == {"a", "b", "c", "x"}
    assert anchors.tokens[:2] == ["a", "x"]  # two pairs each, then ties by token
    pairs = encode_pairs(table, anchors, items, "training")
    assert [anchors.tokens[i] for i in pairs.anchors.tolist()] == ["a", "b", "c"]
    assert [items.tokens[i] for i in pairs.items.tolist()] == ["x", "x", "a"]


# ---------------------------------------------------------------- encode_pairs
def test_encode_pairs_keeps_weights_aligned() -> None:
    table = make_table(["a", "b", "a"], ["x", "y", "y"], [1.0, 2.0, 3.0])
    anchors, items = build_vocabularies(table, shared=False, min_count=1)
    pairs = encode_pairs(table, anchors, items, "training")
    assert pairs.anchors.dtype == torch.int32 and pairs.items.dtype == torch.int32
    assert pairs.weights is not None and pairs.weights.dtype == torch.float32
    got = {
        (anchors.tokens[a], items.tokens[i]): w
        for a, i, w in zip(
            pairs.anchors.tolist(), pairs.items.tolist(), pairs.weights.tolist(), strict=True
        )
    }
    assert got == {("a", "x"): 1.0, ("b", "y"): 2.0, ("a", "y"): 3.0}


def test_encode_pairs_drops_unknown_ids_with_a_warning() -> None:
    train = make_table(["a", "b"], ["x", "y"])
    anchors, items = build_vocabularies(train, shared=False, min_count=1)
    val = make_table(["a", "zz", "b", "a"], ["y", "x", "qq", "x"], [1.0, 2.0, 3.0, 4.0])
    with pytest.warns(UserWarning) as record:
        pairs = encode_pairs(val, anchors, items, "validation")
    assert len(record) == 1
    message = str(record[0].message)
    assert "dropped 2 of 4 validation pair(s)" in message
    assert "('zz', 'x')" in message  # the first dropped pair is the example
    assert pairs.anchors.tolist() == [anchors.index["a"], anchors.index["a"]]
    assert pairs.items.tolist() == [items.index["y"], items.index["x"]]
    assert pairs.weights is not None and pairs.weights.tolist() == [1.0, 4.0]


def test_encode_pairs_error_when_none_is_left() -> None:
    train = make_table(["a"], ["x"])
    anchors, items = build_vocabularies(train, shared=False, min_count=1)
    with pytest.raises(ValueError, match=r"none of the 2 validation pairs"):
        encode_pairs(make_table(["a", "q"], ["q", "x"]), anchors, items, "validation")


# ---------------------------------------------------------------- split_pairs
def random_pairs(
    seed: int, num_pairs: int, num_anchors: int, num_items: int, weights: bool = True
) -> EncodedPairs:
    rng = np.random.default_rng(seed)
    keys = rng.choice(num_anchors * num_items, size=num_pairs, replace=False)
    anchors = torch.from_numpy(keys // num_items).int()
    items = torch.from_numpy(keys % num_items).int()
    w = torch.from_numpy(rng.random(num_pairs)).float() if weights else None
    return EncodedPairs(anchors, items, w)


def triples(pairs: EncodedPairs) -> list[tuple[int, int, float]]:
    assert pairs.weights is not None
    return sorted(
        zip(pairs.anchors.tolist(), pairs.items.tolist(), pairs.weights.tolist(), strict=True)
    )


def split_quietly(pairs: EncodedPairs, fraction: float, seed: int, shared: bool):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return split_pairs(pairs, fraction, seed, shared)


@pytest.mark.parametrize("shared", [False, True])
def test_split_is_deterministic_for_a_seed(shared: bool) -> None:
    pairs = random_pairs(0, 200, 30, 30)
    train1, val1 = split_quietly(pairs, 0.2, seed=7, shared=shared)
    train2, val2 = split_quietly(pairs, 0.2, seed=7, shared=shared)
    assert torch.equal(train1.anchors, train2.anchors) and torch.equal(val1.items, val2.items)
    assert torch.equal(val1.anchors, val2.anchors) and torch.equal(train1.items, train2.items)
    _, val3 = split_quietly(pairs, 0.2, seed=8, shared=shared)
    assert triples(val1) != triples(val3)


@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_split_partitions_the_pairs_and_covers_validation_ids(shared: bool, seed: int) -> None:
    # Sparse pairs: many ids occur once, so some held-out pairs must go back to training.
    pairs = random_pairs(seed, 120, 60, 50)
    train, val = split_quietly(pairs, 0.3, seed=seed, shared=shared)
    train_set, val_set = triples(train), triples(val)
    assert len(val) > 0 and len(train) > 0
    assert not set(train_set) & set(val_set)
    assert sorted(train_set + val_set) == triples(pairs)
    assert len(val) <= round(0.3 * len(pairs))
    if shared:
        seen = set(train.anchors.tolist()) | set(train.items.tolist())
        assert set(val.anchors.tolist()) <= seen
        assert set(val.items.tolist()) <= seen
    else:
        assert set(val.anchors.tolist()) <= set(train.anchors.tolist())
        assert set(val.items.tolist()) <= set(train.items.tolist())


def test_split_separate_spaces_do_not_mix_anchor_and_item_ids() -> None:
    # Anchor 2 occurs only in the held-out candidates as an anchor, but item id 2 is in training:
    # in separate id spaces that does not cover it.
    pairs = EncodedPairs(
        torch.tensor([0, 0, 1, 1, 2]), torch.tensor([0, 2, 0, 2, 0]), torch.ones(5)
    )
    for seed in range(10):
        train, val = split_quietly(pairs, 0.4, seed=seed, shared=False)
        assert 2 not in val.anchors.tolist()
        assert set(val.anchors.tolist()) <= set(train.anchors.tolist())
        assert set(val.items.tolist()) <= set(train.items.tolist())


def test_split_warns_how_many_moved_back() -> None:
    # A star: anchor 0 with items 0..9; every item occurs in one pair only, so none can be
    # held out.
    star = EncodedPairs(torch.zeros(10, dtype=torch.long), torch.arange(10), None)
    with pytest.raises(ValueError, match="no pair can be held out"):
        split_pairs(star, 0.5, seed=0, shared=False)
    # Two anchors sharing all items: every item is covered by the other anchor.
    anchors = torch.tensor([0] * 5 + [1] * 5 + [2])
    items = torch.cat([torch.arange(5), torch.arange(5), torch.tensor([9])])
    pairs = EncodedPairs(anchors, items, None)
    moved_any = False
    for seed in range(20):
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            train, val = split_pairs(pairs, 0.5, seed=seed, shared=False)
        assert train.weights is None and val.weights is None
        held = {(a, i) for a, i in zip(val.anchors.tolist(), val.items.tolist(), strict=True)}
        assert (2, 9) not in held
        # No pair (0, i) and (1, i) can both be held out: item i would be unseen.
        for item in range(5):
            assert not {(0, item), (1, item)} <= held
        moved = 6 - len(val)
        if moved:
            moved_any = True
            assert any(f"{moved} of 6 held-out pair(s)" in str(w.message) for w in record)
        else:
            assert not record
    assert moved_any


def test_split_error_when_nothing_can_be_held_out() -> None:
    pairs = EncodedPairs(torch.tensor([0, 1]), torch.tensor([0, 1]), None)
    with pytest.raises(ValueError, match="no pair can be held out"):
        split_pairs(pairs, 0.5, seed=0, shared=False)
    with pytest.raises(ValueError, match="no pair can be held out"):
        split_pairs(pairs, 0.5, seed=0, shared=True)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_split_fraction_out_of_range(fraction: float) -> None:
    pairs = random_pairs(0, 20, 5, 5)
    with pytest.raises(ValueError, match=r"val_fraction must be in \(0, 1\)"):
        split_pairs(pairs, fraction, seed=0, shared=False)


def test_split_holds_out_at_least_one_pair() -> None:
    pairs = random_pairs(0, 80, 4, 20)  # every (anchor, item): each id occurs >= 4 times
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing moves back
        train, val = split_pairs(pairs, 0.001, seed=0, shared=False)
    assert len(val) == 1 and len(train) == 79
