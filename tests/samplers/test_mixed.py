"""MixedSampler: shares of K from each component, in order, with the mixture's log_q."""

from __future__ import annotations

import math

import pytest
import torch

from nslightning.samplers import (
    HardNegativeSampler,
    InBatchSampler,
    MemoryBankSampler,
    MixedSampler,
    NegativeSampler,
    UniformSampler,
    UnigramSampler,
)
from nslightning.samplers.base import derived_seed

COUNTS = torch.tensor([5.0, 1.0, 3.0, 10.0, 1.0, 7.0, 2.0, 4.0])
V = COUNTS.numel()


def scorer(anchors: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    return (candidates * 3 + anchors[:, None]).float().remainder(7)


# ---------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("shares", "match"),
    [
        ([0.5, 0.4], "sum to 1"),
        ([0.7, 0.7], "sum to 1"),
        ([1.5, -0.5], "positive"),
        ([1.0, 0.0], "positive"),
        ([float("nan"), 1.0], "positive"),
        ([1.0], "one share per sampler"),
        ([0.2, 0.3, 0.5], "one share per sampler"),
    ],
)
def test_bad_shares_raise(shares: list[float], match: str):
    with pytest.raises(ValueError, match=match):
        MixedSampler([UniformSampler(), UnigramSampler()], shares)


def test_no_component_raises():
    with pytest.raises(ValueError, match="at least one sampler"):
        MixedSampler([], [])


def test_a_unique_component_raises():
    with pytest.raises(ValueError, match=r"unique=True\) cannot be mixed"):
        MixedSampler([UniformSampler(), UnigramSampler(unique=True)], [0.5, 0.5])


def test_shares_within_rounding_of_one_are_accepted():
    mixed = MixedSampler([UniformSampler() for _ in range(3)], [1 / 3, 1 / 3, 1 / 3])
    mixed.setup(COUNTS)
    assert mixed.sample(torch.tensor([1, 2]), 3).ids.shape == (2, 3)


# ---------------------------------------------------------------------------- seeds
def test_component_seeds_are_derived_distinct_and_not_the_mixtures():
    mixed = MixedSampler([UniformSampler(seed=5), UniformSampler(seed=5)], [0.5, 0.5], seed=5)
    seeds = [component.seed for component in mixed.samplers]
    assert seeds == [derived_seed(5, 0), derived_seed(5, 1)]
    assert len({*seeds, mixed.seed}) == 3


def test_two_identical_components_do_not_draw_identical_columns():
    mixed = MixedSampler([UniformSampler(), UniformSampler()], [0.5, 0.5], seed=0)
    mixed.setup(COUNTS)
    positives = torch.arange(V).repeat(8)
    out = mixed.sample(positives, 8)
    first, second = out.ids[:, :4], out.ids[:, 4:]
    assert not torch.equal(first, second)
    # Neither stream is the mixture's own: a lone sampler with the mixture's seed draws other ids.
    lone = UniformSampler(seed=0)
    lone.setup(COUNTS)
    assert not torch.equal(lone.sample(positives, 4).ids, first)


def test_mixture_is_reproducible_under_its_seed():
    def run(seed: int) -> torch.Tensor:
        mixed = MixedSampler([UniformSampler(), UnigramSampler()], [0.25, 0.75], seed=seed)
        mixed.setup(COUNTS)
        return mixed.sample(torch.arange(V), 7).ids

    assert torch.equal(run(3), run(3))
    assert not torch.equal(run(3), run(4))


def test_set_rank_propagates_to_components():
    inner = HardNegativeSampler(UniformSampler(), pool_size=4)
    mixed = MixedSampler([UniformSampler(), inner], [0.5, 0.5], seed=2)
    mixed.set_rank(3)
    assert mixed.rank == 3
    assert [component.rank for component in mixed.samplers] == [3, 3]
    assert inner.base is not None and inner.base.rank == 3


def test_set_rank_changes_the_components_draws():
    def run(rank: int) -> torch.Tensor:
        mixed = MixedSampler([UniformSampler(), UnigramSampler()], [0.5, 0.5], seed=1)
        mixed.setup(COUNTS)
        mixed.set_rank(rank)
        return mixed.sample(torch.arange(V).repeat(4), 4).ids

    r0, r1 = run(0), run(1)
    assert not torch.equal(r0[:, :2], r1[:, :2])
    assert not torch.equal(r0[:, 2:], r1[:, 2:])


# ---------------------------------------------------------------------------- columns
@pytest.mark.parametrize("batch_first", [True, False])
def test_columns_are_in_component_order(batch_first: bool):
    # Batch ids are < 10, the uniform component never draws them: each column's source shows.
    in_batch = InBatchSampler()
    uniform = UniformSampler(never_drawn=list(range(10)))
    samplers: list[NegativeSampler] = [in_batch, uniform] if batch_first else [uniform, in_batch]
    mixed = MixedSampler(samplers, [0.5, 0.5])
    mixed.setup(torch.ones(20))
    positives = torch.arange(10)
    for _ in range(5):
        out = mixed.sample(positives, 6)
        assert out.ids.shape == (10, 6)
        batch_part = out.ids[:, :3] if batch_first else out.ids[:, 3:]
        uniform_part = out.ids[:, 3:] if batch_first else out.ids[:, :3]
        assert (batch_part < 10).all()
        assert (uniform_part >= 10).all()
        assert out.mask.all()


def test_a_component_drawing_fewer_columns_shrinks_the_result():
    mixed = MixedSampler([InBatchSampler(), UniformSampler()], [0.5, 0.5])
    mixed.setup(COUNTS)
    positives = torch.tensor([2, 5])  # in-batch can give one column, not two
    out = mixed.sample(positives, 4)
    assert out.ids.shape == (2, 3)
    assert torch.equal(out.ids[:, 0], torch.tensor([5, 2]))


# ---------------------------------------------------------------------------- log_q
def test_log_q_is_none_with_a_hard_negative_component():
    hard = HardNegativeSampler(UniformSampler(), pool_size=6)
    mixed = MixedSampler([UniformSampler(), hard], [0.5, 0.5])
    mixed.setup(COUNTS)
    positives = torch.tensor([1, 3, 6])
    out = mixed.sample(positives, 4, anchors=torch.tensor([0, 2, 4]), scorer=scorer)
    assert out.log_q is None
    assert out.ids.shape == (3, 4)
    assert mixed.log_prob(out.ids, positives) is None


def test_log_q_is_the_mixture_by_hand():
    mixed = MixedSampler([UniformSampler(), UnigramSampler(power=1.0)], [0.25, 0.75])
    mixed.setup(COUNTS)
    positives = torch.tensor([0, 3, 5, 7])
    out = mixed.sample(positives, 4)  # one uniform column, three unigram ones
    assert out.log_q is not None
    unigram = (COUNTS / COUNTS.sum()).double()
    expected = torch.log(0.25 * (1 / V) + 0.75 * unigram[out.ids])
    torch.testing.assert_close(out.log_q.double(), expected, rtol=1e-5, atol=1e-6)
    # The nominal-share log_prob is the same mixture here (the split is exactly 1 and 3).
    log_prob = mixed.log_prob(out.ids, positives)
    assert log_prob is not None
    torch.testing.assert_close(log_prob.double(), expected, rtol=1e-5, atol=1e-6)


def test_log_q_weights_the_columns_actually_drawn():
    # In-batch gets 2 of K=4 columns but can only draw 1 (two positives): weights 1/3 and 2/3.
    mixed = MixedSampler([InBatchSampler(), UniformSampler()], [0.5, 0.5])
    mixed.setup(COUNTS)
    positives = torch.tensor([2, 5])
    out = mixed.sample(positives, 4)
    assert out.log_q is not None
    in_batch_q = torch.isin(out.ids, positives).double() * 0.5  # each batch id has share 1/2
    expected = torch.log(in_batch_q / 3 + (2 / 3) * (1 / V))
    torch.testing.assert_close(out.log_q.double(), expected, rtol=1e-5, atol=1e-6)


def test_log_q_with_a_memory_bank_component_by_hand():
    mixed = MixedSampler([MemoryBankSampler(size=4), UniformSampler()], [0.5, 0.5])
    mixed.setup(COUNTS)
    positives = torch.tensor([1, 1, 6])
    out = mixed.sample(positives, 2)
    assert out.log_q is not None
    bank_q = torch.where(out.ids == 1, 2 / 3, torch.where(out.ids == 6, 1 / 3, 0.0)).double()
    expected = torch.log(0.5 * bank_q + 0.5 / V)
    torch.testing.assert_close(out.log_q.double(), expected, rtol=1e-5, atol=1e-6)


def test_log_q_stays_defined_for_valid_negatives_when_a_redraw_row_is_all_hits():
    # The redraw component can only draw id 2; for the row whose positive is 2 every drawable id
    # is a hit. The in-batch columns of that row are still valid negatives with a known
    # probability: (1/2) * (1/3) for a batch id, since the redraw component cannot draw them.
    stuck = UniformSampler(never_drawn=[0, 1, 3, 4, 5, 6, 7], redraw=True)
    mixed = MixedSampler([InBatchSampler(), stuck], [0.5, 0.5])
    mixed.setup(torch.ones(V))
    positives = torch.tensor([2, 0, 5])
    out = mixed.sample(positives, 4)
    assert out.log_q is not None
    valid_in_batch = out.mask[0, :2]
    assert valid_in_batch.all()
    assert not torch.isnan(out.log_q[out.mask]).any(), out.log_q
    torch.testing.assert_close(
        out.log_q[0, :2], torch.full((2,), math.log(0.5 / 3)), rtol=1e-5, atol=1e-6
    )


# ---------------------------------------------------------------------------- split
@pytest.mark.parametrize(
    ("shares", "k", "expected"),
    [
        ([0.25, 0.75], 4, [1, 3]),
        ([0.25, 0.75], 8, [2, 6]),
        ([0.5, 0.5], 10, [5, 5]),
        ([0.2, 0.3, 0.5], 10, [2, 3, 5]),
        ([0.1, 0.9], 20, [2, 18]),
        ([1.0], 7, [7]),
    ],
)
def test_split_is_exact_when_integral(shares: list[float], k: int, expected: list[int]):
    mixed = MixedSampler([UniformSampler() for _ in shares], shares)
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        assert mixed.split(k, gen) == expected


@pytest.mark.parametrize(
    ("shares", "k"),
    [([0.3, 0.7], 5), ([1 / 3, 1 / 3, 1 / 3], 4), ([0.15, 0.6, 0.25], 3), ([0.5, 0.5], 1)],
)
def test_split_sums_to_k_with_the_share_as_expectation(shares: list[float], k: int):
    mixed = MixedSampler([UniformSampler() for _ in shares], shares)
    gen = torch.Generator().manual_seed(1)
    totals = [0] * len(shares)
    calls = 4000
    for _ in range(calls):
        split = mixed.split(k, gen)
        assert sum(split) == k
        for index, (columns, share) in enumerate(zip(split, shares, strict=True)):
            # Rounded at random: the floor or the ceiling of share * K.
            assert math.floor(share * k + 1e-9) <= columns <= math.ceil(share * k - 1e-9)
            totals[index] += columns
    for total, share in zip(totals, shares, strict=True):
        assert total / calls == pytest.approx(share * k, abs=0.04)


def test_sample_has_k_columns_with_fractional_shares():
    mixed = MixedSampler([UniformSampler(), UnigramSampler()], [0.3, 0.7])
    mixed.setup(COUNTS)
    for _ in range(10):
        out = mixed.sample(torch.tensor([0, 1, 2]), 5)
        assert out.ids.shape == (3, 5)
