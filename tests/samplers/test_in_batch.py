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
    [(1, 1, 0), (1, 7, 0), (2, 1, 1), (2, 5, 1), (5, 3, 3), (5, 4, 4), (5, 9, 4), (12, 1, 1)],
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
        chosen = InBatchSampler._choose_exactly(flat, drawable, rows, 4, gen)
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
    # Row 0 (id 1) sees 2, 2, 3, 3, 3: frequencies 2/6 and 3/6.
    assert out.log_q is not None
    expected_row0 = torch.tensor([2 / 6, 2 / 6, 3 / 6, 3 / 6, 3 / 6]).log()
    torch.testing.assert_close(out.log_q[0], expected_row0)
    # Row 3 (id 3) sees 1, 2, 2, 3, 3.
    expected_row3 = torch.tensor([1 / 6, 2 / 6, 2 / 6, 3 / 6, 3 / 6]).log()
    torch.testing.assert_close(out.log_q[3], expected_row3)

    ids = torch.tensor([1, 2, 3, 4]).expand(6, 4)
    log_prob = make().log_prob(ids, flat)
    expected = torch.tensor([math.log(1 / 6), math.log(2 / 6), math.log(3 / 6), -math.inf])
    torch.testing.assert_close(log_prob, expected.float().expand(6, 4))


def test_log_q_counts_only_drawable_positions():
    flat = torch.tensor([1, 2, 2, 3, 3, 3])
    sampler = make(never_drawn=[1])
    out = sampler.sample(flat, 5)
    assert out.log_q is not None
    # Five drawable positions: 2 has frequency 2/5, 3 has 3/5; id 1 is masked everywhere.
    valid = out.mask
    expected = {2: math.log(2 / 5), 3: math.log(3 / 5)}
    for value, log_q in zip(out.ids[valid].tolist(), out.log_q[valid].tolist(), strict=True):
        assert log_q == pytest.approx(expected[value], rel=1e-6)
    assert not out.mask[out.ids == 1].any()
    log_prob = sampler.log_prob(torch.tensor([[1, 2, 3, 9]]).expand(6, 4), flat)
    assert torch.isneginf(log_prob[:, 0]).all() and torch.isneginf(log_prob[:, 3]).all()
    torch.testing.assert_close(log_prob[:, 1], torch.full((6,), math.log(2 / 5)))
    torch.testing.assert_close(log_prob[:, 2], torch.full((6,), math.log(3 / 5)))


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
    assert torch.isneginf(log_prob[0]).all()
    assert torch.isneginf(log_prob[1, 1:]).all() and torch.isneginf(log_prob[2, 2])
    torch.testing.assert_close(log_prob[1, 0], torch.tensor(math.log(1 / 3)))


def test_same_seed_same_choice_and_the_stream_moves_on():
    flat = torch.arange(20)
    a, b = make(seed=9), make(seed=9)
    first_a, first_b = a.sample(flat, 3), b.sample(flat, 3)
    assert torch.equal(first_a.ids, first_b.ids)
    assert not torch.equal(a.sample(flat, 3).ids, first_a.ids)
