"""KnownPositives against a Python set of pairs."""

from __future__ import annotations

import pytest
import torch

from nslightning.data.known_positives import KnownPositives

A, V = 13, 17


def random_known(seed: int, num_pairs: int = 60) -> tuple[KnownPositives, set[tuple[int, int]]]:
    g = torch.Generator().manual_seed(seed)
    anchors = torch.randint(0, A, (num_pairs,), generator=g)
    items = torch.randint(0, V, (num_pairs,), generator=g)  # duplicates likely
    reference = set(zip(anchors.tolist(), items.tolist(), strict=True))
    return KnownPositives(anchors, items, A, V), reference


def naive_contains(reference: set[tuple[int, int]], anchors, items) -> torch.Tensor:
    a, i = torch.broadcast_tensors(anchors, items)
    values = [
        (x, y) in reference for x, y in zip(a.flatten().tolist(), i.flatten().tolist(), strict=True)
    ]
    return torch.tensor(values, dtype=torch.bool).reshape(a.shape)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_contains_rows_against_a_set(seed: int) -> None:
    known, reference = random_known(seed)
    assert len(known) == len(reference)
    g = torch.Generator().manual_seed(100 + seed)
    anchors = torch.randint(0, A, (9, 1), generator=g)
    items = torch.randint(0, V, (9, 11), generator=g)
    # Make sure some known pairs are queried.
    pairs = sorted(reference)
    for row in range(9):
        anchor, item = pairs[(row * 7) % len(pairs)]
        anchors[row, 0], items[row, 0] = anchor, item
    got = known.contains(anchors, items)
    expected = naive_contains(reference, anchors, items)
    assert got.shape == (9, 11) and got.dtype == torch.bool
    assert torch.equal(got, expected)
    assert got[:, 0].all()


@pytest.mark.parametrize("seed", [3, 4])
def test_contains_grid_against_a_set(seed: int) -> None:
    known, reference = random_known(seed, num_pairs=120)
    anchors = torch.arange(A).unsqueeze(1)  # (A, 1)
    items = torch.arange(V).unsqueeze(0)  # (1, C)
    got = known.contains(anchors, items)
    assert got.shape == (A, V)
    assert torch.equal(got, naive_contains(reference, anchors, items))
    assert int(got.sum()) == len(reference)


def test_contains_keys_do_not_alias_across_anchors() -> None:
    # (0, V - 1) and (1, 0) are neighbours in key order: neither implies the other.
    known = KnownPositives(torch.tensor([0]), torch.tensor([V - 1]), A, V)
    assert known.contains(torch.tensor([0]), torch.tensor([V - 1])).item()
    assert not known.contains(torch.tensor([1]), torch.tensor([0])).item()
    assert not known.contains(torch.tensor([1]), torch.tensor([V - 1])).item()
    # Past the last key (searchsorted returns the length).
    assert not known.contains(torch.tensor([A - 1]), torch.tensor([V - 1])).item()


def test_negative_ids_are_never_known() -> None:
    # (1, -1) has key 1 * V - 1, the key of the known (0, V - 1): padding must not hit it.
    known = KnownPositives(torch.tensor([0, 1]), torch.tensor([V - 1, 0]), A, V)
    anchors = torch.tensor([[1], [1], [0]])
    items = torch.tensor([[-1, 0], [-1, -1], [-1, V - 1]])
    got = known.contains(anchors, items)
    assert got.tolist() == [[False, True], [False, False], [False, True]]


def test_empty_set() -> None:
    empty = torch.zeros(0, dtype=torch.long)
    known = KnownPositives(empty, empty, A, V)
    assert len(known) == 0 and known.max_degree == 0
    got = known.contains(torch.arange(A).unsqueeze(1), torch.arange(V).unsqueeze(0))
    assert got.shape == (A, V) and not got.any()
    assert known.degree(torch.arange(A)).tolist() == [0] * A
    padded = known.padded(torch.tensor([0, 5]), 3)
    assert padded.tolist() == [[-1, -1, -1], [-1, -1, -1]]


def test_padded_lists_the_lowest_ids_with_pads() -> None:
    anchors = torch.tensor([2, 2, 2, 2, 0, 5, 2])
    items = torch.tensor([9, 3, 7, 1, 4, 0, 3])
    known = KnownPositives(anchors, items, A, V)
    assert known.padded(torch.tensor([2]), 3).tolist() == [[1, 3, 7]]
    assert known.padded(torch.tensor([2, 0, 1, 5]), 5).tolist() == [
        [1, 3, 7, 9, -1],
        [4, -1, -1, -1, -1],
        [-1, -1, -1, -1, -1],
        [0, -1, -1, -1, -1],
    ]
    # The last anchor id (its row ends at the end of the members).
    last = KnownPositives(torch.tensor([A - 1, A - 1]), torch.tensor([2, 1]), A, V)
    assert last.padded(torch.tensor([A - 1, 0]), 3).tolist() == [[1, 2, -1], [-1, -1, -1]]
    # Any shape of anchors.
    assert known.padded(torch.tensor([[2], [0]]), 2).shape == (2, 1, 2)


@pytest.mark.parametrize("seed", [5, 6])
def test_padded_and_degree_against_a_set(seed: int) -> None:
    known, reference = random_known(seed, num_pairs=80)
    width = known.max_degree
    padded = known.padded(torch.arange(A), width)
    degree = known.degree(torch.arange(A))
    for anchor in range(A):
        expected = sorted(i for a, i in reference if a == anchor)
        assert degree[anchor].item() == len(expected)
        assert padded[anchor].tolist() == expected + [-1] * (width - len(expected))
    assert width == max(degree.tolist())


def test_degree_counts_distinct_items() -> None:
    known = KnownPositives(torch.tensor([0, 0, 0, 3]), torch.tensor([1, 1, 2, 1]), A, V)
    assert known.degree(torch.tensor([0, 1, 3])).tolist() == [2, 0, 1]
    assert known.degree(torch.tensor([[0], [3]])).shape == (2, 1)
    assert known.max_degree == 2 and len(known) == 3


def test_shape_errors() -> None:
    with pytest.raises(ValueError, match="1-D and of equal length"):
        KnownPositives(torch.tensor([0, 1]), torch.tensor([0]), A, V)
    with pytest.raises(ValueError, match="1-D and of equal length"):
        KnownPositives(torch.zeros(2, 2), torch.zeros(2, 2), A, V)


def test_buffers_are_not_persistent_and_move_with_the_module() -> None:
    known = KnownPositives(torch.tensor([0, 1]), torch.tensor([2, 3]), A, V)
    assert known.state_dict() == {}
    names = {name for name, _ in known.named_buffers()}
    assert names == {"keys", "offsets", "members"}
    moved = known.to("meta")
    assert moved.keys.device.type == "meta"
    assert moved.offsets.device.type == "meta"
    assert moved.members.device.type == "meta"
    # Also inside a parent module.
    parent = torch.nn.Module()
    parent.known = KnownPositives(torch.tensor([0]), torch.tensor([1]), A, V)
    parent.weight = torch.nn.Parameter(torch.zeros(1))
    assert set(parent.state_dict()) == {"weight"}


def test_anchors_with_items_are_those_of_nonzero_degree() -> None:
    known = KnownPositives(torch.tensor([4, 0, 4, 2]), torch.tensor([1, 3, 2, 1]), 6, 5)
    assert known.anchors_with_items().tolist() == [0, 2, 4]
    every = torch.arange(6)
    torch.testing.assert_close(known.anchors_with_items(), every[known.degree(every) > 0])


def test_members_take_four_bytes_and_padded_rows_are_long() -> None:
    known = KnownPositives(torch.tensor([0, 0, 1], dtype=torch.int32),
                           torch.tensor([2, 1, 0], dtype=torch.int32), 2, 3)
    assert known.members.dtype == torch.int32 and known.keys.dtype == torch.int64
    padded = known.padded(torch.tensor([0, 1]), 2)
    assert padded.dtype == torch.int64 and padded.tolist() == [[1, 2], [0, -1]]
