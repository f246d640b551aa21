"""InBatchSampler: the other positives of the batch, never the row's own, uniform when capped."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch
from scipy.stats import chi2

from nslightning.samplers import InBatchSampler
from nslightning.samplers import in_batch as in_batch_module

V = 64
P_MIN = 1e-3

# The choice among the batch has three code paths: random keys over the whole batch in one block
# (small batches), the same in blocks of rows, and the O(N K) draw with its exact redo of the rows
# that came up short. A small MAX_KEYS forces the latter two for the batches used here.
PATHS = {"exact": 1 << 22, "blocks-of-1": 16, "blocks-of-4": 64}


@pytest.fixture(params=sorted(PATHS))
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(in_batch_module, "MAX_KEYS", PATHS[request.param])
    return request.param


def make(seed: int = 0, never_drawn: list[int] | None = None) -> InBatchSampler:
    sampler = InBatchSampler(seed=seed, never_drawn=never_drawn)
    sampler.setup(torch.ones(V))
    return sampler


def others(flat: torch.Tensor) -> torch.Tensor:
    """``(N, N-1)``: each row's other positives in batch order (a plain-Python reference)."""
    values = flat.tolist()
    return torch.tensor(
        [[v for j, v in enumerate(values) if j != i] for i in range(len(values))],
        dtype=torch.int64,
    ).view(len(values), len(values) - 1)


def valid_counts(flat: list[int], row: int, never: set[int]) -> Counter[int]:
    """How many positions of each id are valid negatives for ``row``."""
    own = flat[row]
    return Counter(v for j, v in enumerate(flat) if j != row and v != own and v not in never)


# ---------------------------------------------------------------------------- shape
@pytest.mark.parametrize(
    ("n", "k", "columns"),
    [(0, 3, 0), (1, 1, 0), (1, 7, 0), (2, 1, 1), (2, 5, 1), (5, 3, 3), (5, 4, 4), (5, 9, 4),
     (12, 1, 1)],
)
def test_column_count_is_min_of_k_and_n_minus_one(n: int, k: int, columns: int):
    sampler = make()
    positives = torch.arange(n) * 3 % V
    out = sampler.sample(positives, k)
    assert out.ids.shape == (n, columns)
    assert out.mask.shape == (n, columns)
    assert out.log_q is not None and out.log_q.shape == (n, columns)
    assert out.ids.dtype == torch.int64 and out.mask.dtype == torch.bool


@pytest.mark.parametrize("extra", [0, 1, 10])
def test_uncapped_rows_are_exactly_the_other_positions_in_order(extra: int):
    flat = torch.tensor([5, 9, 5, 1, 30, 9, 2, 5])
    out = make().sample(flat, flat.numel() - 1 + extra)
    assert torch.equal(out.ids, others(flat))
    # The own positive and its duplicates are the only invalid ones.
    assert torch.equal(out.mask, out.ids != flat[:, None])


def test_multi_dim_positives_are_one_batch():
    positives = torch.tensor([[3, 8, 1], [8, 0, 7], [2, 6, 6], [9, 4, 5]])
    flat = positives.reshape(-1)
    sampler = make()
    out = sampler.sample(positives, 50)
    assert out.ids.shape == (4, 3, 11)
    assert torch.equal(out.ids.view(12, 11), others(flat))
    assert torch.equal(out.mask, out.ids != positives.unsqueeze(-1))

    capped = sampler.sample(positives, 4)
    assert capped.ids.shape == (4, 3, 4)
    assert torch.isin(capped.ids, flat).all()
    assert not (capped.mask & (capped.ids == positives.unsqueeze(-1))).any()
    # Every row has at least 9 valid others: all four picks are valid.
    assert capped.mask.all()


# ---------------------------------------------------------------------------- validity
def test_own_positive_and_duplicates_are_never_valid(path: str):
    gen = torch.Generator().manual_seed(1)
    sampler = make(seed=3)
    for k in (1, 3, 6, 11, 40):
        for _ in range(10):
            flat = torch.randint(0, 6, (12,), generator=gen)  # many duplicates
            out = sampler.sample(flat, k)
            assert out.ids.shape == (12, min(k, 11))
            assert not (out.mask & (out.ids == flat[:, None])).any()
            # With no never_drawn, exactly the draws equal to the positive are masked.
            assert torch.equal(out.mask, out.ids != flat[:, None])
            # No position is taken twice: an id appears at most as often as in the others.
            for row in range(12):
                available = Counter(others(flat)[row].tolist())
                taken = Counter(out.ids[row].tolist())
                assert all(taken[v] <= available[v] for v in taken), (row, taken, available)


@pytest.mark.parametrize(
    "batch",
    [
        [0] * 6 + [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],  # duplicated rows still have 10 valid ones
        [0] * 12 + [1, 2, 3],  # the 0-rows have only three valid candidates
        [4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 7],  # the 4-rows have one
    ],
)
def test_capped_rows_prefer_valid_candidates(path: str, batch: list[int]):
    flat = torch.tensor(batch)
    sampler = make(seed=1)
    k = 5
    for _ in range(20):
        out = sampler.sample(flat, k)
        for row in range(flat.numel()):
            valid = valid_counts(batch, row, set())
            num_valid = sum(valid.values())
            chosen = out.ids[row][out.mask[row]].tolist()
            if num_valid >= k:
                assert out.mask[row].all(), (row, out.ids[row])
            else:
                # Every valid candidate is taken once (one batch position fills one slot at
                # most), the rest of the row is masked.
                assert Counter(chosen) == valid, (row, out.ids[row], out.mask[row])
                assert int(out.mask[row].sum()) == num_valid


def test_never_drawn_positions_are_never_valid(path: str):
    never = [0, 1]
    sampler = make(seed=2, never_drawn=never)
    gen = torch.Generator().manual_seed(4)
    saw_never = False
    for k in (2, 5, 20):
        for _ in range(10):
            flat = torch.randint(0, 8, (12,), generator=gen)
            out = sampler.sample(flat, k)
            in_never = torch.isin(out.ids, torch.tensor(never))
            saw_never |= bool(in_never.any())
            assert not (out.mask & in_never).any()
            assert not (out.mask & (out.ids == flat[:, None])).any()
            for row in range(12):
                num_valid = sum(valid_counts(flat.tolist(), row, set(never)).values())
                assert int(out.mask[row].sum()) == min(num_valid, out.ids.shape[1])
    assert saw_never  # the never_drawn ids were offered, and refused


# ---------------------------------------------------------------------------- uniformity
@pytest.mark.parametrize(
    ("batch", "never"),
    [
        (list(range(10, 20)), []),  # distinct: every other position equally likely
        ([3, 3, 1, 2, 5, 6, 7, 8, 9, 9], [8]),  # duplicates and a never_drawn id
    ],
)
def test_capped_choice_is_uniform_among_valid_candidates(
    path: str, batch: list[int], never: list[int]
):
    flat = torch.tensor(batch)
    n, k, calls = flat.numel(), 3, 800
    sampler = make(seed=7, never_drawn=never)
    draws = []
    for _ in range(calls):
        out = sampler.sample(flat, k)
        assert out.ids.shape == (n, k) and out.mask.all()
        draws.append(out.ids)
    cells = torch.stack(draws) + V * torch.arange(n)[None, :, None]  # (calls, n, k): row * V + id
    observed = torch.bincount(cells.reshape(-1), minlength=n * V).view(n, V).double().numpy()
    statistic, dof = 0.0, 0
    for row in range(n):
        valid = valid_counts(batch, row, set(never))
        total = sum(valid.values())
        assert total >= k
        support = sorted(valid)
        assert observed[row].sum() == observed[row, support].sum()  # only valid ids were drawn
        expected = np.array([calls * k * valid[v] / total for v in support])
        statistic += float(((observed[row, support] - expected) ** 2 / expected).sum())
        dof += len(support) - 1
    assert chi2.sf(statistic, dof) > P_MIN, (statistic, dof)
    # A plain check as well: each of the 9 others of a distinct batch is taken K/(N-1) of the time.
    if not never:
        shares = observed[:, 10:20].sum(axis=0) / (calls * (n - 1))
        np.testing.assert_allclose(shares, k / (n - 1), rtol=0.06)


def test_choose_exactly_in_row_blocks(monkeypatch: pytest.MonkeyPatch):
    # The exact choice over the whole batch, three rows per block of random keys.
    flat = torch.tensor([2, 2, 2, 5, 6, 7, 8, 9, 11, 12])
    drawable = flat != 12
    monkeypatch.setattr(in_batch_module, "MAX_KEYS", 3 * flat.numel())
    gen = torch.Generator().manual_seed(0)
    rows = torch.tensor([0, 3, 4, 5, 6, 9, 1])
    for _ in range(50):
        chosen = InBatchSampler._choose_exactly(flat, flat[rows], rows, drawable, 4, gen)
        assert chosen.shape == (rows.numel(), 4)
        assert not (chosen == rows[:, None]).any()  # never the row's own position
        for row, positions in zip(rows.tolist(), chosen.tolist(), strict=True):
            assert len(set(positions)) == 4
            # Every row has at least 4 valid positions: all chosen ones are valid.
            assert all(drawable[j] and flat[j] != flat[row] for j in positions)


# ---------------------------------------------------------------------------- log_q
def test_log_q_is_the_batch_frequency_by_hand():
    flat = torch.tensor([1, 2, 2, 3, 3, 3])
    out = make().sample(flat, 5)
    assert out.log_q is not None
    # log_q is the probability that a valid candidate of the row, chosen at random, holds the
    # id: count(id) / (N - c), c being the copies of the row's own positive.
    # Row 0 (id 1, c = 1) sees 2, 2, 3, 3, 3 out of 5 candidates.
    expected_row0 = torch.tensor([2 / 5, 2 / 5, 3 / 5, 3 / 5, 3 / 5]).log()
    torch.testing.assert_close(out.log_q[0], expected_row0)
    assert out.mask[0].all()
    # Row 1 (id 2, c = 2) sees 1, 2, 3, 3, 3: candidates 1, 3, 3, 3; the other 2 is masked.
    assert out.ids[1].tolist() == [1, 2, 3, 3, 3]
    assert out.mask[1].tolist() == [True, False, True, True, True]
    torch.testing.assert_close(
        out.log_q[1][out.mask[1]], torch.tensor([1 / 4, 3 / 4, 3 / 4, 3 / 4]).log()
    )
    # Row 3 (id 3, c = 3) sees 1, 2, 2, 3, 3: candidates 1, 2, 2.
    assert out.mask[3].tolist() == [True, True, True, False, False]
    torch.testing.assert_close(out.log_q[3, :3], torch.tensor([1 / 3, 2 / 3, 2 / 3]).log())

    ids = torch.tensor([1, 2, 3, 4]).expand(6, 4)
    log_prob = make().log_prob(ids, flat)
    inf = math.inf
    expected = torch.tensor(
        [
            [-inf, math.log(2 / 5), math.log(3 / 5), -inf],  # own positive 1; 4 is absent
            [math.log(1 / 4), -inf, math.log(3 / 4), -inf],
            [math.log(1 / 4), -inf, math.log(3 / 4), -inf],
            [math.log(1 / 3), math.log(2 / 3), -inf, -inf],
            [math.log(1 / 3), math.log(2 / 3), -inf, -inf],
            [math.log(1 / 3), math.log(2 / 3), -inf, -inf],
        ]
    )
    torch.testing.assert_close(log_prob, expected)
    # Every row's probabilities over the batch's ids sum to one.
    torch.testing.assert_close(log_prob.exp().sum(dim=1), torch.ones(6))


def test_log_q_counts_only_drawable_positions():
    flat = torch.tensor([1, 2, 2, 3, 3, 3])
    sampler = make(never_drawn=[1])
    out = sampler.sample(flat, 5)
    assert out.log_q is not None
    # Five drawable positions. Row 0's positive (1) is never drawn, so it removes none of them:
    # 2 has probability 2/5 and 3 has 3/5. A 2-row has 5 - 2 candidates (all 3s), a 3-row
    # 5 - 3 (all 2s); id 1 is masked everywhere.
    by_positive = {1: {2: 2 / 5, 3: 3 / 5}, 2: {3: 1.0}, 3: {2: 1.0}}
    valid = out.mask
    for row in range(6):
        by_id = by_positive[int(flat[row])]
        for value, log_q in zip(out.ids[row][valid[row]].tolist(),
                                out.log_q[row][valid[row]].tolist(), strict=True):
            assert log_q == pytest.approx(math.log(by_id[value]), rel=1e-6, abs=1e-6)
    assert not out.mask[out.ids == 1].any()
    log_prob = sampler.log_prob(torch.tensor([[1, 2, 3, 9]]).expand(6, 4), flat)
    assert torch.isneginf(log_prob[:, 0]).all() and torch.isneginf(log_prob[:, 3]).all()
    inf = math.inf
    torch.testing.assert_close(
        log_prob[:, 1], torch.tensor([math.log(2 / 5), -inf, -inf, 0.0, 0.0, 0.0])
    )
    torch.testing.assert_close(
        log_prob[:, 2], torch.tensor([math.log(3 / 5), 0.0, 0.0, -inf, -inf, -inf])
    )


def test_log_q_of_capped_draws_matches_log_prob(path: str):
    gen = torch.Generator().manual_seed(5)
    sampler = make(seed=4, never_drawn=[0])
    for _ in range(5):
        flat = torch.randint(0, 9, (12,), generator=gen)
        out = sampler.sample(flat, 4)
        assert out.log_q is not None
        expected = sampler.log_prob(out.ids, flat)
        valid = out.mask
        torch.testing.assert_close(out.log_q[valid], expected[valid])
        assert torch.isfinite(out.log_q[valid]).all()


def test_log_prob_is_minus_inf_for_ids_not_in_the_batch():
    flat = torch.tensor([4, 5, 6])
    log_prob = make().log_prob(torch.tensor([[0, 7, 63], [4, 1, 2], [6, 5, 40]]), flat)
    assert torch.isneginf(log_prob[0]).all()  # none of them in the batch
    assert torch.isneginf(log_prob[1, 1:]).all() and torch.isneginf(log_prob[2, 2])
    # Each row has two candidates: the other two positives.
    torch.testing.assert_close(log_prob[1, 0], torch.tensor(math.log(1 / 2)))
    torch.testing.assert_close(log_prob[2, 1], torch.tensor(math.log(1 / 2)))
    assert torch.isneginf(log_prob[2, 0])  # the row's own positive is never a candidate


def test_log_prob_keeps_the_shape_of_multi_dim_positives():
    positives = torch.tensor([[3, 3], [5, 8]])
    ids = torch.tensor([[[3, 5, 8]] * 2, [[3, 5, 8]] * 2])
    log_prob = make().log_prob(ids, positives)
    assert log_prob.shape == (2, 2, 3)
    inf = math.inf
    rows_of_3 = torch.tensor([-inf, math.log(1 / 2), math.log(1 / 2)])
    torch.testing.assert_close(log_prob[0], rows_of_3.expand(2, 3))
    torch.testing.assert_close(
        log_prob[1],
        torch.tensor([[math.log(2 / 3), -inf, math.log(1 / 3)],
                      [math.log(2 / 3), math.log(1 / 3), -inf]]),
    )


def test_log_q_of_a_row_with_no_candidate_left_is_not_nan():
    # The 2-rows have no candidate: the other 2 is their own positive, 7 is never drawn. Nothing
    # to normalise by and no valid draw, but log_q must not be NaN. The 7-row (its positive is
    # never drawn) has both 2s as candidates.
    sampler = make(never_drawn=[7])
    flat = torch.tensor([2, 2, 7])
    out = sampler.sample(flat, 2)
    assert out.log_q is not None
    assert not out.mask[:2].any() and out.mask[2].all()
    assert out.ids[2].tolist() == [2, 2]
    torch.testing.assert_close(out.log_q[2], torch.zeros(2))  # probability 2/2
    assert not torch.isnan(out.log_q).any()
    log_prob = sampler.log_prob(torch.tensor([[2, 7]]).expand(3, 2), flat)
    assert torch.isneginf(log_prob[:2]).all()  # own positive; never_drawn
    torch.testing.assert_close(log_prob[2, 0], torch.tensor(0.0))
    assert torch.isneginf(log_prob[2, 1])


def test_log_q_is_a_log_probability_in_every_slot():
    # The contract (test_contract: log_q finite and <= 0 in every slot, masked ones included)
    # on a batch dominated by one id: a 3-row's masked duplicates of its own positive must not
    # get log(c / (N - c)) = log 3 > 0.
    flat = torch.tensor([3, 3, 3, 1])
    for k in (3, 2):  # every other position; a capped choice
        out = make(seed=k).sample(flat, k)
        assert out.log_q is not None
        valid = out.mask
        torch.testing.assert_close(out.log_q[valid], torch.zeros(int(valid.sum())))  # only a 1
        assert torch.isfinite(out.log_q).all(), out.log_q
        assert (out.log_q <= 0).all(), out.log_q


def test_same_seed_same_choice_and_the_stream_moves_on():
    flat = torch.arange(20)
    a, b = make(seed=9), make(seed=9)
    first_a, first_b = a.sample(flat, 3), b.sample(flat, 3)
    assert torch.equal(first_a.ids, first_b.ids)
    assert not torch.equal(a.sample(flat, 3).ids, first_a.ids)


# ---------------------------------------------------------------------------- all_others
@pytest.mark.parametrize(("n", "k"), [(1, 1), (2, 1), (6, 1), (6, 3), (6, 5), (6, 40)])
def test_all_others_gives_every_other_position_whatever_k(n: int, k: int):
    flat = torch.tensor([5, 9, 5, 1, 30, 9])[:n]
    sampler = InBatchSampler(seed=3, all_others=True)
    sampler.setup(torch.ones(V))
    out = sampler.sample(flat, k)
    assert out.ids.shape == (n, n - 1)
    assert out.mask.shape == out.ids.shape and out.log_q is not None
    assert out.log_q.shape == out.ids.shape
    assert torch.equal(out.ids, others(flat))
    assert torch.equal(out.mask, out.ids != flat[:, None])
    # The same log_q as the plain sampler gives for the same columns.
    plain = make().sample(flat, n - 1 if n > 1 else 1)
    assert torch.equal(plain.ids, out.ids)
    torch.testing.assert_close(out.log_q, plain.log_q)


def test_all_others_is_deterministic_and_keeps_multi_dim_shapes():
    positives = torch.tensor([[3, 8, 1], [8, 0, 7]])
    a = InBatchSampler(seed=0, all_others=True)
    b = InBatchSampler(seed=1, all_others=True, never_drawn=[0])
    for sampler in (a, b):
        sampler.setup(torch.ones(V))
    first = a.sample(positives, 2)
    assert first.ids.shape == (2, 3, 5)
    assert torch.equal(first.ids.view(6, 5), others(positives.reshape(-1)))
    assert torch.equal(a.sample(positives, 2).ids, first.ids)  # no random choice
    with_never = b.sample(positives, 1)
    assert torch.equal(with_never.ids, first.ids)
    assert torch.equal(with_never.mask, (first.ids != positives.unsqueeze(-1)) & (first.ids != 0))
    assert "all_others=True" in repr(a)
    assert "all_others=False" in repr(make())
