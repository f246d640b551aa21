"""filtered_ranks counts the competitors around each target instead of sorting every row: its
results equal those of the sorting implementation it replaced, on each of its three paths."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from nslightning.metrics import FilteredRanking, filtered_ranks, ranking

INF = float("inf")
NAN = float("nan")


def reference_filtered_ranks(scores: Tensor, targets: Tensor, filtered: Tensor) -> Tensor:
    """The former implementation: sort every row's competitors, binary-search the targets."""
    num_candidates = scores.shape[1]
    target_scores = scores.gather(1, targets.clamp_min(0))
    competitors = scores.masked_fill(filtered, float("-inf")).sort(dim=1).values
    below_or_tied = torch.searchsorted(competitors, target_scores, right=True)
    below = torch.searchsorted(competitors, target_scores, right=False)
    higher = num_candidates - below_or_tied
    ranks = 1.0 + higher.to(scores.dtype) + 0.5 * (below_or_tied - below).to(scores.dtype)
    return ranks.masked_fill(targets < 0, float("nan"))


@pytest.fixture(params=["compare", "search", "chunk"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """compare: NumPy comparison passes per target score (the CPU default); search: NumPy
    binary search per candidate (the CPU path of rows with many distinct target scores);
    chunk: torch bucketing of the whole chunk (other devices and dtypes)."""
    if request.param == "search":
        monkeypatch.setattr(ranking, "_MAX_COMPARED", 0)
    elif request.param == "chunk":
        monkeypatch.setattr(ranking, "_ROW_BY_ROW_DTYPES", ())
    return str(request.param)


def random_case(
    seed: int,
    num_anchors: int = 12,
    num_candidates: int = 300,
    width: int = 40,
    levels: int = 5,
    dtype: torch.dtype = torch.float32,
    infinities: bool = True,
) -> tuple[Tensor, Tensor, Tensor]:
    """Integer-valued scores (many ties) with some -inf and +inf; targets padded with -1 at
    any position, row 0 without targets and row 1 full; filtered: the targets and others."""
    g = torch.Generator().manual_seed(seed)
    scores = torch.randint(levels, (num_anchors, num_candidates), generator=g).to(dtype)
    if infinities:
        draw = torch.rand(num_anchors, num_candidates, generator=g)
        scores[draw < 0.04] = -INF
        scores[draw > 0.97] = INF
    targets = torch.full((num_anchors, width), -1, dtype=torch.int64)
    filtered = torch.rand(num_anchors, num_candidates, generator=g) < 0.1
    counts = torch.randint(1, width + 1, (num_anchors,), generator=g)
    counts[0], counts[1] = 0, width
    for row, count in enumerate(counts.tolist()):
        chosen = torch.randperm(num_candidates, generator=g)[:count]
        positions = torch.randperm(width, generator=g)[:count]
        targets[row, positions] = chosen
        filtered[row, chosen] = True
    return scores, targets, filtered


def assert_identical(got: Tensor, expected: Tensor) -> None:
    assert got.dtype == expected.dtype and got.shape == expected.shape
    assert torch.equal(torch.isnan(got), torch.isnan(expected))
    real = ~torch.isnan(expected)
    assert torch.equal(got[real], expected[real])


def check(scores: Tensor, targets: Tensor, filtered: Tensor) -> None:
    expected = reference_filtered_ranks(scores, targets, filtered)
    assert_identical(filtered_ranks(scores, targets, filtered), expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_equal_to_the_sorting_reference(path: str, seed: int, dtype: torch.dtype) -> None:
    scores, targets, filtered = random_case(seed, dtype=dtype)
    expected = reference_filtered_ranks(scores, targets, filtered)
    assert_identical(filtered_ranks(scores, targets, filtered), expected)
    # Ties everywhere: half ranks do occur.
    assert (expected[~torch.isnan(expected)] % 1 == 0.5).any()


@pytest.mark.parametrize("levels", [2, 50, 10_000])
def test_equal_without_infinities_and_with_few_or_many_ties(path: str, levels: int) -> None:
    scores, targets, filtered = random_case(
        10 + levels, num_candidates=500, width=60, levels=levels, infinities=False
    )
    check(scores, targets, filtered)


def test_rows_with_few_and_many_distinct_target_scores_in_one_chunk() -> None:
    """The default CPU path takes comparisons for some rows and a binary search for others."""
    scores, targets, filtered = random_case(
        20, num_anchors=6, num_candidates=2000, width=600, levels=100_000
    )
    targets[2:, 10:] = -1  # row 1 keeps its 600 targets, the others at most 10
    target_scores = scores.gather(1, targets.clamp_min(0))
    rows = zip(target_scores, targets, strict=True)
    distinct = [len(set(row[t >= 0].tolist())) for row, t in rows]
    assert max(distinct) > ranking._MAX_COMPARED >= min(d for d in distinct if d > 0)
    check(scores, targets, filtered)


def test_unfiltered_targets_and_dense_filters(path: str) -> None:
    scores, targets, _ = random_case(30, levels=3)
    for filtered in (torch.zeros(scores.shape, dtype=torch.bool), torch.rand(scores.shape) < 0.9):
        check(scores, targets, filtered)


def test_minus_infinity_target_ties_with_the_filtered_candidates(path: str) -> None:
    # Filtered candidates compete as -inf: a target scoring -inf ties with them (itself
    # included) and with the competitors scoring -inf, as the sorting implementation did.
    scores = torch.tensor([[-INF, 1.0, -INF, 0.0, 5.0, -INF], [2.0, -INF, 3.0, 2.0, 1.0, 0.0]])
    targets = torch.tensor([[0, 3, -1], [1, 0, 3]])
    filtered = torch.tensor(
        [[True, False, False, True, True, False], [True, True, False, True, False, False]]
    )
    ranks = filtered_ranks(scores, targets, filtered)
    # Row 0: competitors 1.0, -inf, -inf; filtered: 3 entries at -inf.
    # Row 1: competitors 3.0, 1.0, 0.0; filtered: 3 entries at -inf.
    assert ranks[0, 0].item() == 1 + 1 + 0.5 * 5 and ranks[0, 1].item() == 2.0
    assert math.isnan(ranks[0, 2].item())
    assert ranks[1].tolist() == [1 + 3 + 0.5 * 3, 2.0, 2.0]
    assert_identical(ranks, reference_filtered_ranks(scores, targets, filtered))


def test_plus_infinity_and_nan_targets(path: str) -> None:
    scores = torch.tensor([[INF, NAN, 1.0, INF, 2.0, INF], [NAN, 0.0, 1.0, 1.0, 5.0, 4.0]])
    targets = torch.tensor([[0, 1, 4], [0, 2, -1]])
    filtered = torch.zeros(2, 6, dtype=torch.bool)
    filtered[0, [0, 1, 4]] = True
    filtered[1, 0] = True
    ranks = filtered_ranks(scores, targets, filtered)
    # +inf target: nothing above it, ties with the +inf competitors (ids 3 and 5); nan target:
    # rank 1; the unfiltered target 1.0 of row 1 ties with id 3 and with itself.
    assert ranks.tolist()[0] == [2.0, 1.0, 3.0]
    assert ranks[1, :2].tolist() == [1.0, 1 + 2 + 0.5 * 2]
    assert_identical(ranks, reference_filtered_ranks(scores, targets, filtered))


def test_nan_competitors_rank_above_every_target_but_tie_with_plus_infinity(path: str) -> None:
    # (The sorting implementation searched rows holding nan: its result depended on where the
    # binary search happened to land; this is what it gave when it landed right.)
    scores = torch.tensor([[1.0, NAN, 3.0, 2.0, INF, 0.5, NAN, -INF]])
    targets = torch.tensor([[3, 4, 5, 7]])
    filtered = torch.zeros(1, 8, dtype=torch.bool)
    filtered[0, [3, 4, 5, 7]] = True
    # Competitors: 1.0, nan, 3.0, nan; the -inf target also ties with the 4 filtered ids.
    ranks = filtered_ranks(scores, targets, filtered)
    assert ranks.tolist() == [[1 + 3, 1 + 0.5 * 2, 1 + 4, 1 + 4 + 0.5 * 4]]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_scores(dtype: torch.dtype) -> None:
    scores, targets, filtered = random_case(40, dtype=dtype, levels=7)
    scores = scores + torch.rand(scores.shape).to(dtype)  # ties and near ties in half precision
    got = filtered_ranks(scores, targets, filtered)
    assert got.dtype == dtype
    assert_identical(got, reference_filtered_ranks(scores, targets, filtered))


def test_strided_scores_and_gradients(path: str) -> None:
    scores, targets, filtered = random_case(50, levels=4)
    strided = scores.t().contiguous().t().requires_grad_()
    assert not strided.is_contiguous()
    got = filtered_ranks(strided, targets, filtered)
    assert not got.requires_grad
    assert_identical(got, reference_filtered_ranks(scores, targets, filtered))


@pytest.mark.parametrize(("num_anchors", "width"), [(0, 3), (4, 0), (4, 3)])
def test_empty_chunks_and_only_pads(path: str, num_anchors: int, width: int) -> None:
    scores = torch.randn(num_anchors, 9)
    targets = torch.full((num_anchors, width), -1, dtype=torch.int64)
    filtered = torch.zeros(num_anchors, 9, dtype=torch.bool)
    got = filtered_ranks(scores, targets, filtered)
    assert got.shape == (num_anchors, width) and got.dtype == torch.float32
    assert torch.isnan(got).all()


def test_filtered_ranking_equals_the_reference_metric(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    chunks = [random_case(60, levels=4), random_case(61, levels=300, width=25)]

    def run() -> dict[str, Tensor]:
        metric = FilteredRanking(ks=(1, 3, 10))
        for chunk in chunks:
            metric.update(*chunk)
        return metric.compute()

    got = run()
    monkeypatch.setattr(ranking, "filtered_ranks", reference_filtered_ranks)
    expected = run()
    assert set(got) == set(expected)
    for name, value in expected.items():
        assert value.dtype == torch.float64
        assert torch.equal(got[name], value), name
