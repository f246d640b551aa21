"""negative_statistics, rank_bins and rank_histogram on hand-made draws."""

from __future__ import annotations

import math

import pytest
import torch

from nslightning.samplers import Negatives, UnigramSampler, negative_statistics
from nslightning.samplers.diagnostics import rank_bins, rank_histogram


def negatives(ids: list[list[int]], mask: list[list[bool]]) -> Negatives:
    ids_tensor = torch.tensor(ids, dtype=torch.int64)
    return Negatives(ids=ids_tensor, log_q=None, mask=torch.tensor(mask))


@pytest.mark.parametrize(
    ("num_items", "expected"),
    [
        (0, []),
        (1, [(0, 1)]),
        (5, [(0, 5)]),
        (10, [(0, 10)]),
        (11, [(0, 10), (10, 11)]),
        (100, [(0, 10), (10, 100)]),
        (101, [(0, 10), (10, 100), (100, 101)]),
        (2500, [(0, 10), (10, 100), (100, 1000), (1000, 2500)]),
        (10_000, [(0, 10), (10, 100), (100, 1000), (1000, 10_000)]),
    ],
)
def test_rank_bins_are_decades_covering_the_vocabulary(
    num_items: int, expected: list[tuple[int, int]]
):
    assert rank_bins(num_items) == expected


def test_statistics_by_hand():
    draw = negatives(
        [[1, 1, 12], [150, 3, 3], [0, 40, 7]],
        [[True, False, True], [True, True, True], [False, True, True]],
    )
    pos_scores = torch.tensor([2.0, 1.0, 0.0])
    neg_scores = torch.tensor([[1.0, 100.0, 3.0], [-1.0, 0.0, 2.0], [100.0, 4.0, -2.0]])
    stats = negative_statistics(draw, 200, pos_scores, neg_scores)
    # Without positives every masked slot counts as a hit.
    assert stats["hit_rate"].item() == pytest.approx(2 / 9)
    assert stats["masked_rate"].item() == pytest.approx(2 / 9)
    # Distinct valid ids per row: 2 of 2, 2 of 3, 2 of 2 (masked slots do not count).
    assert stats["unique_fraction"].item() == pytest.approx(6 / 7)
    assert stats["pos_score"].item() == pytest.approx(1.0)
    # The two masked slots (score 100) are ignored: (1 + 3 - 1 + 0 + 2 + 4 - 2) / 7.
    assert stats["neg_score"].item() == pytest.approx(7 / 7)
    assert stats["score_gap"].item() == pytest.approx(1.0 - 1.0)
    # Kept negatives scoring at least their row's positive: 3 (row 0), 2 (row 1), 4 (row 2).
    assert stats["hard_share"].item() == pytest.approx(3 / 7)
    # Valid ids: 1, 12, 150, 3, 3, 40, 7 -> ranks [0, 10): 4, [10, 100): 2, [100, 200): 1.
    assert stats["rank_share/0-10"].item() == pytest.approx(4 / 7)
    assert stats["rank_share/10-100"].item() == pytest.approx(2 / 7)
    assert stats["rank_share/100-200"].item() == pytest.approx(1 / 7)
    assert set(stats) == {
        "hit_rate", "masked_rate", "unique_fraction", "pos_score", "neg_score", "score_gap",
        "hard_share", "rank_share/0-10", "rank_share/10-100", "rank_share/100-200",
    }
    for value in stats.values():
        assert value.dim() == 0 and value.dtype.is_floating_point


def test_score_gap_is_positive_minus_negative():
    draw = negatives([[2, 3], [4, 5]], [[True, True], [True, False]])
    stats = negative_statistics(
        draw, 10, torch.tensor([[3.0, 5.0]]), torch.tensor([[1.0, 2.0], [3.0, 50.0]])
    )
    assert stats["pos_score"].item() == pytest.approx(4.0)
    assert stats["neg_score"].item() == pytest.approx(2.0)
    assert stats["score_gap"].item() == pytest.approx(2.0)


def test_without_scores_there_are_no_score_entries():
    draw = negatives([[2, 3], [4, 5]], [[True, True], [True, True]])
    stats = negative_statistics(draw, 10)
    assert not {"pos_score", "neg_score", "score_gap"} & set(stats)
    assert stats["hit_rate"].item() == 0.0
    assert stats["unique_fraction"].item() == 1.0
    only_negatives = negative_statistics(draw, 10, neg_scores=torch.ones(2, 2))
    assert "neg_score" in only_negatives and "score_gap" not in only_negatives


@pytest.mark.parametrize("num_items", [7, 10, 64, 1000, 12_345])
def test_rank_shares_sum_to_one_on_a_real_draw(num_items: int):
    counts = torch.arange(num_items, 0, -1).double()
    sampler = UnigramSampler(power=1.0, seed=num_items)
    sampler.setup(counts)
    positives = torch.randint(0, num_items, (64,), generator=torch.Generator().manual_seed(0))
    draw = sampler.sample(positives, 8)
    stats = negative_statistics(draw, num_items)
    shares = {key: value for key, value in stats.items() if key.startswith("rank_share/")}
    assert len(shares) == len(rank_bins(num_items))
    assert sum(value.item() for value in shares.values()) == pytest.approx(1.0, abs=1e-6)
    valid = draw.ids[draw.mask]
    for low, high in rank_bins(num_items):
        expected = ((valid >= low) & (valid < high)).sum().item() / valid.numel()
        assert shares[f"rank_share/{low}-{high}"].item() == pytest.approx(expected)
    assert stats["hit_rate"].item() == pytest.approx(1 - draw.mask.float().mean().item())


def test_multi_dim_draws_are_rows_of_the_last_dimension():
    ids = torch.tensor([[[1, 1], [2, 3]], [[4, 4], [5, 5]]])
    draw = Negatives(ids=ids, log_q=None, mask=torch.ones_like(ids, dtype=torch.bool))
    stats = negative_statistics(draw, 10)
    assert stats["unique_fraction"].item() == pytest.approx((1 + 2 + 1 + 1) / 4 / 2)


@pytest.mark.parametrize("shape", [(0, 4), (3, 0), (0,)])
def test_empty_ids_give_no_statistics(shape: tuple[int, ...]):
    ids = torch.zeros(shape, dtype=torch.int64)
    draw = Negatives(ids=ids, log_q=None, mask=torch.ones(shape, dtype=torch.bool))
    assert negative_statistics(draw, 10, torch.zeros(0), torch.zeros(shape)) == {}


@pytest.mark.parametrize("bins", [1, 5, 32])
def test_rank_histogram_counts_the_valid_negatives(bins: int):
    draw = negatives(
        [[0, 9, 99, 997], [5, 0, 500, 998]],
        [[True, True, True, True], [False, True, True, False]],
    )
    counts, edges = rank_histogram(draw, 999, bins=bins)
    assert counts.shape == (bins,) and edges.shape == (bins + 1,)
    assert counts.sum().item() == 6
    assert edges[0].item() == 0.0
    assert edges[-1].item() == pytest.approx(math.log10(1000))
    assert counts.device.type == "cpu" and edges.device.type == "cpu"


def test_rank_histogram_puts_ids_in_their_log_rank_bin():
    # log10(rank + 1) over [0, log10(1000)) = [0, 3) in three bins: [0, 1), [1, 2), [2, 3].
    draw = negatives([[0, 8, 9, 98, 99, 998]], [[True] * 6])
    counts, _ = rank_histogram(draw, 999, bins=3)
    assert counts.tolist() == [2.0, 2.0, 2.0]


def test_rank_histogram_on_a_real_draw():
    sampler = UnigramSampler(power=0.75, seed=1)
    num_items = 500
    sampler.setup(torch.arange(num_items, 0, -1).double())
    positives = torch.randint(0, num_items, (200,), generator=torch.Generator().manual_seed(1))
    draw = sampler.sample(positives, 10)
    counts, _ = rank_histogram(draw, num_items, bins=16)
    assert counts.sum().item() == draw.mask.sum().item()


def test_hit_rate_counts_only_accidental_hits_when_positives_are_given():
    # Row 0: a hit on the positive (masked) and an empty slot (masked, not a hit).
    # Row 1: a hit on an excluded id (masked).
    draw = negatives([[7, 2, 0], [5, 6, 9]], [[False, True, False], [True, False, True]])
    positives = torch.tensor([7, 1])
    exclude = torch.tensor([[-1], [6]])
    stats = negative_statistics(draw, 10, positives=positives, exclude=exclude)
    assert stats["hit_rate"].item() == pytest.approx(2 / 6)
    assert stats["masked_rate"].item() == pytest.approx(3 / 6)
    without_exclude = negative_statistics(draw, 10, positives=positives)
    assert without_exclude["hit_rate"].item() == pytest.approx(1 / 6)


def test_unique_fraction_ignores_masked_placeholders():
    # A memory bank's empty slots come back as id 0, masked: they are not repeats.
    draw = negatives([[0, 0, 0, 4]], [[False, False, False, True]])
    assert negative_statistics(draw, 10)["unique_fraction"].item() == pytest.approx(1.0)
