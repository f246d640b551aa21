"""Filtered ranks, average precision and FilteredRanking against naive loops."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from nslightning.metrics import FilteredRanking, average_precision, filtered_ranks

A, V, M = 7, 15, 4


def random_case(seed: int, ties: bool):
    """Scores (A, V), padded targets (A, M) with distinct ids per row, filtered (A, V) that
    holds each row's targets and some other candidates. Row 0 has no target at all."""
    g = torch.Generator().manual_seed(seed)
    if ties:
        scores = torch.randint(0, 4, (A, V), generator=g).double()
    else:
        scores = torch.randn(A, V, generator=g, dtype=torch.float64)
    targets = torch.full((A, M), -1, dtype=torch.int64)
    filtered = torch.rand(A, V, generator=g) < 0.2
    for row in range(1, A):
        count = int(torch.randint(1, M + 1, (1,), generator=g))
        chosen = torch.randperm(V, generator=g)[:count]
        targets[row, :count] = chosen
        filtered[row, chosen] = True
    # Pads are not always at the end of a row.
    targets[1] = targets[1].flip(0)
    return scores, targets, filtered


def naive_ranks(scores, targets, filtered) -> list[list[float]]:
    result = []
    for a in range(scores.shape[0]):
        row = []
        for t in targets[a].tolist():
            if t < 0:
                row.append(math.nan)
                continue
            s = scores[a, t].item()
            higher = ties = 0
            for v in range(scores.shape[1]):
                if filtered[a, v]:
                    continue
                if scores[a, v].item() > s:
                    higher += 1
                elif scores[a, v].item() == s:
                    ties += 1
            row.append(1 + higher + 0.5 * ties)
        result.append(row)
    return result


def naive_average_precision(scores, targets, filtered) -> list[float]:
    """For each row: rank the non-filtered candidates and the targets by score, precision at
    each target, mean over targets."""
    result = []
    for a in range(scores.shape[0]):
        wanted = {t for t in targets[a].tolist() if t >= 0}
        if not wanted:
            result.append(math.nan)
            continue
        pool = [v for v in range(scores.shape[1]) if not filtered[a, v] or v in wanted]
        pool.sort(key=lambda v: -scores[a, v].item())
        found, precisions = 0, []
        for position, v in enumerate(pool, start=1):
            if v in wanted:
                found += 1
                precisions.append(found / position)
        result.append(sum(precisions) / len(precisions))
    return result


def assert_close_with_nan(got: torch.Tensor, expected) -> None:
    expected = torch.tensor(expected, dtype=got.dtype)
    assert got.shape == expected.shape
    assert torch.equal(torch.isnan(got), torch.isnan(expected))
    real = ~torch.isnan(expected)
    torch.testing.assert_close(got[real], expected[real])


# ---------------------------------------------------------------- filtered_ranks
def test_filtered_ranks_by_hand() -> None:
    scores = torch.tensor([[0.9, 0.5, 0.7, 0.1], [0.2, 0.2, 0.2, 0.3]])
    targets = torch.tensor([[1, -1], [0, 1]])
    filtered = torch.tensor([[True, True, False, False], [True, True, False, False]])
    ranks = filtered_ranks(scores, targets, filtered)
    # Row 0: only 0.7 beats the target (0.9 is another known positive).
    assert ranks[0, 0].item() == 2.0 and math.isnan(ranks[0, 1].item())
    # Row 1: 0.3 beats both targets, 0.2 (id 2) ties with them: 1 + 1 + 0.5.
    assert ranks[1].tolist() == [2.5, 2.5]
    # Without the filter the other known positive counts against the target.
    unfiltered = filtered_ranks(scores, targets[:, :1], torch.zeros_like(filtered))
    assert unfiltered[0, 0].item() == 3.5  # 0.9 and 0.7 higher, the target ties with itself


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_filtered_ranks_against_a_double_loop(seed: int, ties: bool) -> None:
    scores, targets, filtered = random_case(seed, ties)
    ranks = filtered_ranks(scores, targets, filtered)
    assert ranks.shape == targets.shape and ranks.dtype == scores.dtype
    assert_close_with_nan(ranks, naive_ranks(scores, targets, filtered))
    if ties:
        assert any(r % 1 == 0.5 for r in ranks[~torch.isnan(ranks)].tolist())


def test_filtered_ranks_with_unfiltered_targets_and_float32() -> None:
    scores, targets, _ = random_case(3, ties=True)
    scores = scores.float()
    filtered = torch.zeros(A, V, dtype=torch.bool)
    ranks = filtered_ranks(scores, targets, filtered)
    assert ranks.dtype == torch.float32
    assert_close_with_nan(ranks, naive_ranks(scores, targets, filtered))


# ---------------------------------------------------------------- average_precision
def test_average_precision_by_hand() -> None:
    # Candidates by score: t(0.9) c(0.8) t(0.7) c(0.1); AP = (1/1 + 2/3) / 2.
    scores = torch.tensor([[0.9, 0.8, 0.7, 0.1]])
    targets = torch.tensor([[2, -1, 0]])
    filtered = torch.tensor([[True, False, True, False]])
    ranks = filtered_ranks(scores, targets, filtered)
    ap = average_precision(scores.gather(1, targets.clamp_min(0)), ranks)
    torch.testing.assert_close(ap, torch.tensor([(1 + 2 / 3) / 2]))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_average_precision_against_a_full_ranking(seed: int) -> None:
    scores, targets, filtered = random_case(seed, ties=False)
    ranks = filtered_ranks(scores, targets, filtered)
    ap = average_precision(scores.gather(1, targets.clamp_min(0)), ranks)
    assert ap.shape == (A,)
    assert_close_with_nan(ap, naive_average_precision(scores, targets, filtered))
    assert math.isnan(ap[0].item())  # row without targets


# ---------------------------------------------------------------- FilteredRanking
def naive_metrics(scores, targets, filtered, ks):
    ranks = [r for row in naive_ranks(scores, targets, filtered) for r in row if r == r]
    aps = [ap for ap in naive_average_precision(scores, targets, filtered) if ap == ap]
    result = {
        "mrr": sum(1 / r for r in ranks) / len(ranks),
        "mean_rank": sum(ranks) / len(ranks),
        "map": sum(aps) / len(aps),
    }
    for k in ks:
        result[f"hits@{k}"] = sum(r <= k for r in ranks) / len(ranks)
    return result


def test_filtered_ranking_matches_naive_metrics() -> None:
    scores, targets, filtered = random_case(5, ties=False)
    metric = FilteredRanking(ks=(1, 3, 10))
    metric.update(scores, targets, filtered)
    got = {name: value.item() for name, value in metric.compute().items()}
    expected = naive_metrics(scores, targets, filtered, (1, 3, 10))
    assert set(got) == set(expected)
    for name, value in expected.items():
        assert got[name] == pytest.approx(value), name


def test_filtered_ranking_over_two_chunks_equals_one_pass() -> None:
    scores, targets, filtered = random_case(6, ties=True)
    whole = FilteredRanking(ks=(1, 2, 5))
    whole.update(scores, targets, filtered)
    chunked = FilteredRanking(ks=(1, 2, 5))
    # Chunks of different widths: M is free per chunk.
    chunked.update(scores[:3], targets[:3], filtered[:3])
    chunked.update(scores[3:], targets[3:, :2], filtered[3:])
    reference = FilteredRanking(ks=(1, 2, 5))
    padded = targets.clone()
    padded[3:, 2:] = -1
    reference.update(scores, padded, filtered)
    first, second = chunked.compute(), reference.compute()
    for name in first:
        torch.testing.assert_close(first[name], second[name])
    # And with equal targets, chunking does not change anything.
    split = FilteredRanking(ks=(1, 2, 5))
    split.update(scores[:4], targets[:4], filtered[:4])
    split.update(scores[4:], targets[4:], filtered[4:])
    one, two = whole.compute(), split.compute()
    assert set(one) == {"mrr", "mean_rank", "map", "hits@1", "hits@2", "hits@5"}
    for name in one:
        torch.testing.assert_close(one[name], two[name])
    # Rows without targets do not count as anchors for MAP.
    assert whole.anchors.item() == A - 1
    assert whole.pairs.item() == int((targets >= 0).sum())


def test_hits_at_k() -> None:
    # One anchor, targets ranked 1, 2.5 (tie) and 5 among the competitors.
    scores = torch.tensor([[5.0, 4.0, 3.0, 3.0, 2.0, 1.5, 1.0, 0.0]])
    targets = torch.tensor([[0, 3, 6]])
    filtered = torch.zeros(1, 8, dtype=torch.bool)
    filtered[0, [0, 3, 6]] = True
    ranks = filtered_ranks(scores, targets, filtered)
    assert ranks.tolist() == [[1.0, 2.5, 5.0]]
    metric = FilteredRanking(ks=(1, 2, 3, 5))
    metric.update(scores, targets, filtered)
    result = metric.compute()
    assert result["hits@1"].item() == pytest.approx(1 / 3)
    assert result["hits@2"].item() == pytest.approx(1 / 3)
    assert result["hits@3"].item() == pytest.approx(2 / 3)
    assert result["hits@5"].item() == pytest.approx(1.0)
    assert result["mean_rank"].item() == pytest.approx((1 + 2.5 + 5) / 3)
    assert result["mrr"].item() == pytest.approx((1 + 1 / 2.5 + 1 / 5) / 3)


def test_reset_and_empty() -> None:
    scores, targets, filtered = random_case(7, ties=False)
    metric = FilteredRanking()
    metric.update(scores, targets, filtered)
    metric.reset()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchmetrics: compute before update
        result = metric.compute()
    assert {name: value.item() for name, value in result.items()} == {
        "mrr": 0.0, "mean_rank": 0.0, "map": 0.0, "hits@1": 0.0, "hits@3": 0.0, "hits@10": 0.0
    }
    # After a reset the metric counts as a fresh one: the first update left nothing behind.
    metric.update(scores, targets, filtered)
    fresh = FilteredRanking()
    fresh.update(scores, targets, filtered)
    again, once = metric.compute(), fresh.compute()
    expected = naive_metrics(scores, targets, filtered, (1, 3, 10))
    assert set(again) == set(once) == set(expected)
    for name, value in expected.items():
        assert again[name].item() == once[name].item() == pytest.approx(value), name


@pytest.mark.parametrize("ks", [(), (0,), (1, -3)])
def test_invalid_ks(ks) -> None:
    with pytest.raises(ValueError, match="ks must be a non-empty list"):
        FilteredRanking(ks=ks)
