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
from tests.samplers.checkpoints import saved_and_loaded

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
    assert out.ids.shape == (2, 3)
    assert out.log_q is not None
    # A row's only in-batch candidate is the other positive (probability 1); its own positive
    # is never an in-batch candidate (probability 0), whichever column drew it.
    other = positives.flip(0)
    in_batch_q = (out.ids == other[:, None]).double()
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
    # probability: the row has two in-batch candidates (0 and 5), each 1/2, weighted by the 2 of
    # 4 columns in-batch drew; the redraw component cannot draw them.
    stuck = UniformSampler(never_drawn=[0, 1, 3, 4, 5, 6, 7], redraw=True)
    mixed = MixedSampler([InBatchSampler(), stuck], [0.5, 0.5])
    mixed.setup(torch.ones(V))
    positives = torch.tensor([2, 0, 5])
    out = mixed.sample(positives, 4)
    assert out.log_q is not None
    assert out.ids[0, :2].tolist() == [0, 5]
    valid_in_batch = out.mask[0, :2]
    assert valid_in_batch.all()
    assert not torch.isnan(out.log_q[out.mask]).any(), out.log_q
    torch.testing.assert_close(
        out.log_q[0, :2], torch.full((2,), math.log(0.5 * 0.5)), rtol=1e-5, atol=1e-6
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


def test_split_without_a_generator_is_reproducible_under_the_seed():
    def splits(seed: int) -> list[list[int]]:
        mixed = MixedSampler([UniformSampler(), UniformSampler()], [0.5, 0.5], seed=seed)
        return [mixed.split(1) for _ in range(40)]

    first = splits(3)
    assert all(sum(split) == 1 for split in first)
    assert {tuple(split) for split in first} == {(1, 0), (0, 1)}
    assert splits(3) == first
    assert splits(4) != first


# ---------------------------------------------------------------------------- split stream
def disjoint_mixture(seed: int) -> MixedSampler:
    """Two components that draw disjoint ids (< 4 and >= 4): every column shows its source."""
    mixed = MixedSampler(
        [UniformSampler(never_drawn=[4, 5, 6, 7]), UniformSampler(never_drawn=[0, 1, 2, 3])],
        [0.5, 0.5],
        seed=seed,
    )
    mixed.setup(COUNTS)
    return mixed


def splits_of_calls(mixed: MixedSampler, calls: int, k: int = 3) -> list[int]:
    """The first component's columns in each of ``calls`` calls of ``sample``."""
    positives = torch.tensor([0, 5])
    out = []
    for _ in range(calls):
        ids = mixed.sample(positives, k).ids
        first = int((ids[0] < 4).sum())
        assert torch.equal(ids < 4, (torch.arange(k) < first).expand_as(ids))
        out.append(first)
    return out


def test_sample_takes_its_split_from_the_split_stream():
    # A twin's split(K) without a generator gives exactly the splits that sample used.
    used, twin = disjoint_mixture(seed=2), disjoint_mixture(seed=2)
    observed = splits_of_calls(used, 30)
    assert set(observed) == {1, 2}
    assert observed == [twin.split(3)[0] for _ in range(30)]


@pytest.mark.parametrize("through_bytes", [False, True])
def test_split_stream_survives_a_state_dict_round_trip(through_bytes: bool):
    used = disjoint_mixture(seed=5)
    splits_of_calls(used, 7)  # the split stream has moved on
    state = used.state_dict()
    if through_bytes:
        state = saved_and_loaded(state)
    fresh = MixedSampler(
        [UniformSampler(never_drawn=[4, 5, 6, 7]), UniformSampler(never_drawn=[0, 1, 2, 3])],
        [0.5, 0.5],
        seed=99,
    )
    fresh.load_state_dict(state)
    expected = splits_of_calls(used, 30)
    assert splits_of_calls(fresh, 30) == expected
    # Negative control: a mixture of the same seed starting afresh splits otherwise.
    assert splits_of_calls(disjoint_mixture(seed=5), 30) != expected


def test_set_rank_changes_the_split_stream():
    rank0, rank1 = disjoint_mixture(seed=1), disjoint_mixture(seed=1)
    rank1.set_rank(1)
    first = [rank0.split(1) for _ in range(40)]
    assert [rank1.split(1) for _ in range(40)] != first
    assert splits_of_calls(rank1, 30) != splits_of_calls(disjoint_mixture(seed=1), 30)
    rank1.set_rank(0)  # back to rank 0: its stream from the start
    assert [rank1.split(1) for _ in range(40)] == first


def test_manual_seed_restarts_the_split_stream():
    mixed = disjoint_mixture(seed=4)
    first = splits_of_calls(mixed, 20)
    mixed.manual_seed(4)
    assert splits_of_calls(mixed, 20) == first


# ---------------------------------------------------------------------------- observe
def test_a_component_given_no_columns_still_sees_the_batch():
    # K = 1: every call gives the one column to the bank or to the uniform sampler; the bank
    # enqueues every batch all the same. The uniform one never draws 0..3, the bank holds them.
    bank = MemoryBankSampler(100)
    mixed = MixedSampler([bank, UniformSampler(never_drawn=[0, 1, 2, 3])], [0.5, 0.5])
    mixed.setup(COUNTS)
    from_bank = []
    for call in range(10):
        out = mixed.sample(torch.tensor([call % 4]), 1)
        assert out.ids.shape == (1, 1)
        from_bank.append(int(out.ids[0, 0]) < 4)
    assert any(from_bank) and not all(from_bank)  # both kinds of call happened
    assert int(bank.filled) == 10
    assert bank.contents().tolist() == [call % 4 for call in range(10)]


def test_observe_recurses_into_the_components():
    inner_bank, hard_bank = MemoryBankSampler(10), MemoryBankSampler(10)
    inner = MixedSampler([inner_bank, UniformSampler()], [0.5, 0.5])
    hard = HardNegativeSampler(hard_bank, pool_size=4)
    mixed = MixedSampler([inner, hard, UniformSampler()], [0.25, 0.25, 0.5])
    mixed.setup(COUNTS)
    positives = torch.tensor([[3, 1], [4, 1]])
    mixed.observe(positives)
    assert inner_bank.contents().tolist() == [3, 1, 4, 1]
    assert hard_bank.contents().tolist() == [3, 1, 4, 1]
    hard.observe(torch.tensor([6]))
    assert hard_bank.contents().tolist() == [3, 1, 4, 1, 6]


def test_observe_is_a_no_op_for_samplers_without_batch_state():
    # A mixture of basic samplers: observing neither draws nor changes any state.
    a, b = disjoint_mixture(seed=6), disjoint_mixture(seed=6)
    before = {key: value.clone() for key, value in a.state_dict().items()
              if isinstance(value, torch.Tensor)}
    a.observe(torch.tensor([1, 2, 3]))
    for key, value in a.state_dict().items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, before[key]), key
    positives = torch.tensor([0, 5])
    assert torch.equal(a.sample(positives, 3).ids, b.sample(positives, 3).ids)
