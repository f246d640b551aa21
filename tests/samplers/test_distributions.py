"""The samplers draw from the distributions they claim (chi-square goodness of fit)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from nslightning.samplers import (
    InBatchSampler,
    LogUniformSampler,
    MemoryBankSampler,
    MixedSampler,
    NegativeSampler,
    TableSampler,
    UniformSampler,
    UnigramSampler,
    build_alias_table,
    draw_from_alias,
)
from nslightning.samplers import in_batch as in_batch_module

COUNTS = torch.tensor([0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 3.0, 7.0, 50.0, 2.0, 0.0, 4.0])
V = COUNTS.numel()
NUM_ROWS, K = 20_000, 10  # 200k draws
P_MIN = 1e-3


def expected_probs(power: float, counts: torch.Tensor = COUNTS) -> np.ndarray:
    c = counts.double().numpy()
    weights = np.ones_like(c) if power == 0 else c**power
    return weights / weights.sum()


def draw(sampler: NegativeSampler, seed_positive: int = 0) -> tuple[np.ndarray, np.ndarray]:
    positives = torch.full((NUM_ROWS,), seed_positive, dtype=torch.int64)
    out = sampler.sample(positives, K)
    assert out.log_q is not None
    return out.ids.reshape(-1).numpy(), out.log_q.reshape(-1).double().numpy()


def merge_small_bins(
    observed: np.ndarray, expected: np.ndarray, minimum: float = 5.0
) -> tuple[np.ndarray, np.ndarray]:
    """Merges consecutive bins until each expects at least ``minimum`` (a remainder joins the
    last bin), so that the chi-square approximation holds for long thin tails."""
    merged_observed, merged_expected = [], []
    obs_sum = exp_sum = 0.0
    for obs, exp in zip(observed.tolist(), expected.tolist(), strict=True):
        obs_sum, exp_sum = obs_sum + obs, exp_sum + exp
        if exp_sum >= minimum:
            merged_observed.append(obs_sum)
            merged_expected.append(exp_sum)
            obs_sum = exp_sum = 0.0
    if exp_sum > 0 or obs_sum > 0:
        if merged_expected:
            merged_observed[-1] += obs_sum
            merged_expected[-1] += exp_sum
        else:
            merged_observed.append(obs_sum)
            merged_expected.append(exp_sum)
    return np.asarray(merged_observed), np.asarray(merged_expected)


def chi_square_p(ids: np.ndarray, probs: np.ndarray) -> float:
    observed = np.bincount(ids, minlength=probs.size).astype(np.float64)
    assert observed.size == probs.size, "drew an id outside the distribution"
    support = probs > 0
    assert observed[~support].sum() == 0, "drew an item of probability zero"
    expected = probs[support] / probs[support].sum() * ids.size
    merged_observed, merged_expected = merge_small_bins(observed[support], expected)
    if merged_expected.size < 2:
        return 1.0  # a single bin: nothing to test beyond the support
    return float(chisquare(merged_observed, merged_expected).pvalue)


@pytest.mark.parametrize("seed", [0, 1])
def test_uniform_sampler_is_uniform(seed: int):
    sampler = UniformSampler(seed=seed)
    sampler.setup(COUNTS)
    ids, log_q = draw(sampler)
    assert chi_square_p(ids, np.full(V, 1.0 / V)) > P_MIN
    np.testing.assert_allclose(log_q, np.log(1.0 / V), rtol=1e-6)
    # Every item is drawn, zero counts included: uniform ignores counts.
    assert set(np.unique(ids).tolist()) == set(range(V))


@pytest.mark.parametrize("power", [0.0, 0.5, 0.75, 1.0, 2.0])
@pytest.mark.parametrize("seed", [0, 3])
def test_unigram_sampler_matches_counts_to_the_power(power: float, seed: int):
    sampler = UnigramSampler(power=power, seed=seed)
    sampler.setup(COUNTS)
    probs = expected_probs(power)
    ids, log_q = draw(sampler)
    assert chi_square_p(ids, probs) > P_MIN
    # log_q is the log of the exact probability of each drawn id.
    np.testing.assert_allclose(log_q, np.log(probs[ids]), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(sampler.probabilities().numpy(), probs, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("power", [0.5, 0.75, 1.0, 2.0])
def test_zero_count_items_are_never_drawn_for_positive_power(power: float):
    sampler = UnigramSampler(power=power, seed=0)
    sampler.setup(COUNTS)
    ids, _ = draw(sampler)
    zero = np.flatnonzero(COUNTS.numpy() == 0)
    assert not np.isin(ids, zero).any()
    # ...while every positive-count item does appear.
    assert set(np.unique(ids).tolist()) == set(np.flatnonzero(COUNTS.numpy() > 0).tolist())


def test_power_zero_draws_zero_count_items_uniformly():
    sampler = UnigramSampler(power=0.0, seed=0)
    sampler.setup(COUNTS)
    ids, log_q = draw(sampler)
    assert np.isin(ids, np.flatnonzero(COUNTS.numpy() == 0)).any()
    np.testing.assert_allclose(log_q, -np.log(V), rtol=1e-6)


def test_power_zero_matches_uniform_sampler_in_distribution():
    unigram = UnigramSampler(power=0.0, seed=0)
    unigram.setup(COUNTS)
    ids, _ = draw(unigram)
    assert chi_square_p(ids, np.full(V, 1.0 / V)) > P_MIN


def test_negative_control_chi_square_detects_a_wrong_distribution():
    # The goodness-of-fit test above can fail: power-0.75 draws are not power-1 draws.
    sampler = UnigramSampler(power=0.75, seed=0)
    sampler.setup(COUNTS)
    ids, _ = draw(sampler)
    assert chi_square_p(ids, expected_probs(0.75)) > P_MIN
    assert chi_square_p(ids, expected_probs(1.0)) < 1e-10
    uniform = UniformSampler(seed=0)
    uniform.setup(COUNTS)
    uniform_ids, _ = draw(uniform)
    with pytest.raises(AssertionError, match="probability zero"):
        chi_square_p(uniform_ids, expected_probs(1.0))


@pytest.mark.parametrize("power", [-1.0, -0.01, 2.01, 3.0])
def test_power_out_of_range_raises(power: float):
    with pytest.raises(ValueError, match="power"):
        UnigramSampler(power=power)


@pytest.mark.parametrize("power", [0.5, 0.75, 1.0])
def test_all_zero_counts_raise_for_positive_power(power: float):
    with pytest.raises(ValueError):
        UnigramSampler(power=power).setup(torch.zeros(5))


def test_all_zero_counts_with_power_zero_is_uniform():
    sampler = UnigramSampler(power=0.0)
    sampler.setup(torch.zeros(4))
    np.testing.assert_allclose(sampler.probabilities().numpy(), np.full(4, 0.25), rtol=1e-6)


# ------------------------------------------------------------------------------ alias tables
def alias_mass(accept: torch.Tensor, alias: torch.Tensor) -> np.ndarray:
    """The exact distribution an alias table draws from."""
    acc, ali = accept.double().numpy(), alias.numpy()
    num = acc.size
    mass = acc.copy()
    np.add.at(mass, ali, 1.0 - acc)
    return mass / num


def _random_probs(size: int, seed: int, zeros: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    weights = rng.gamma(0.3, size=size)
    weights[rng.choice(size, size=zeros, replace=False)] = 0.0
    return weights


ALIAS_CASES = {
    "one": np.array([3.0]),
    "two": np.array([1.0, 3.0]),
    "one-hot": np.array([0.0, 0.0, 5.0, 0.0]),
    "uniform": np.ones(9),
    "counts": COUNTS.numpy().astype(np.float64),
    "zipf": 1.0 / np.arange(1, 501),
    "random": _random_probs(1000, seed=0, zeros=100),
    "tiny-and-huge": np.array([1e-12, 1.0, 1e-9, 1e6, 0.0, 1e-3]),
}


@pytest.mark.parametrize("case", sorted(ALIAS_CASES))
def test_build_alias_table_reproduces_the_distribution_exactly(case: str):
    weights = ALIAS_CASES[case]
    probs = weights / weights.sum()
    accept, alias = build_alias_table(torch.from_numpy(weights))
    assert accept.dtype == torch.float64 and alias.dtype == torch.int64
    assert accept.shape == alias.shape == (weights.size,)
    assert ((accept >= 0) & (accept <= 1)).all()
    assert ((alias >= 0) & (alias < weights.size)).all()
    np.testing.assert_allclose(alias_mass(accept, alias), probs, rtol=0, atol=1e-12)
    # Zero-probability items can never come out: not kept, and nobody's alias.
    zero = np.flatnonzero(probs == 0)
    assert (accept.numpy()[zero] == 0).all()
    kept_alias = alias.numpy()[accept.numpy() < 1]
    assert not np.isin(kept_alias, zero).any()


def test_build_alias_table_normalises_unnormalised_weights():
    weights = torch.tensor([2.0, 6.0, 0.0, 12.0])
    a1, b1 = build_alias_table(weights)
    a2, b2 = build_alias_table(weights / weights.sum())
    np.testing.assert_allclose(alias_mass(a1, b1), alias_mass(a2, b2), atol=1e-12)
    np.testing.assert_allclose(alias_mass(a1, b1), [0.1, 0.3, 0.0, 0.6], atol=1e-12)


def test_draw_from_alias_follows_the_table():
    weights = ALIAS_CASES["counts"]
    probs = weights / weights.sum()
    accept, alias = build_alias_table(torch.from_numpy(weights))
    generator = torch.Generator().manual_seed(0)
    ids = draw_from_alias(accept, alias, (400, 500), generator)
    assert ids.shape == (400, 500) and ids.dtype == torch.int64
    assert chi_square_p(ids.reshape(-1).numpy(), probs) > P_MIN
    again = draw_from_alias(accept, alias, (400, 500), torch.Generator().manual_seed(0))
    assert torch.equal(ids, again)


# ------------------------------------------------------------------------------ helpers
SORTED_COUNTS = torch.tensor([50.0, 20.0, 10.0, 7.0, 5.0, 4.0, 3.0, 2.0, 2.0, 1.0, 0.0, 0.0])


def log_uniform_probs(num_items: int) -> np.ndarray:
    k = np.arange(num_items, dtype=np.float64)
    return np.log((k + 2.0) / (k + 1.0)) / np.log(num_items + 1.0)


def table_probs(kind: str) -> np.ndarray:
    """The distribution of one draw of each table sampler over ``SORTED_COUNTS``."""
    if kind == "uniform":
        return np.full(V, 1.0 / V)
    if kind == "unigram":
        return expected_probs(0.75, SORTED_COUNTS)
    return log_uniform_probs(V)


def make_table(kind: str, seed: int = 0, **options: object) -> TableSampler:
    factories = {
        "uniform": UniformSampler,
        "unigram": lambda **kw: UnigramSampler(power=0.75, **kw),
        "log-uniform": LogUniformSampler,
    }
    sampler = factories[kind](seed=seed, **options)
    sampler.setup(SORTED_COUNTS)  # sorted by decreasing count: what log-uniform assumes
    return sampler


def restricted(probs: np.ndarray, removed: list[int]) -> np.ndarray:
    """``probs`` with ``removed`` ids at zero and the rest renormalised."""
    out = probs.copy()
    out[removed] = 0.0
    return out / out.sum()


def sample_ids(
    sampler: NegativeSampler,
    positives: torch.Tensor,
    k: int,
    exclude: torch.Tensor | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    out = sampler.sample(positives, k, exclude=exclude)
    assert out.log_q is not None
    return out.ids.numpy(), out.log_q.double().numpy()


# ------------------------------------------------------------------------------ log-uniform
@pytest.mark.parametrize("num_items", [12, 1000, 50_000])
def test_log_uniform_closed_form_is_zipfian(num_items: int):
    sampler = LogUniformSampler(seed=num_items)
    sampler.setup(torch.arange(num_items, 0, -1, dtype=torch.float64))
    assert sampler.accept.numel() == 0  # the closed form, no alias table
    probs = log_uniform_probs(num_items)
    ids, log_q = draw(sampler)
    # At V = 50 000 the tail expects far fewer than 5 draws per id: the helper merges bins.
    assert chi_square_p(ids, probs) > P_MIN
    np.testing.assert_allclose(log_q, np.log(probs[ids]), rtol=1e-5)
    np.testing.assert_allclose(sampler.probabilities().numpy(), probs, rtol=1e-5)
    # The head is where the mass is: id 0 alone has log(2) / log(V + 1).
    assert np.mean(ids == 0) == pytest.approx(probs[0], abs=5 * math.sqrt(probs[0] / ids.size))


def test_log_uniform_with_never_drawn_renormalises_the_rest():
    never = [0, 3, 7]
    sampler = make_table("log-uniform", never_drawn=never)
    assert sampler.accept.numel() == V  # an alias table over the remaining ids
    probs = restricted(log_uniform_probs(V), never)
    ids, log_q = draw(sampler)
    assert not np.isin(ids, never).any()
    assert chi_square_p(ids, probs) > P_MIN
    np.testing.assert_allclose(log_q, np.log(probs[ids]), rtol=1e-5)


# ------------------------------------------------------------------------------ never_drawn
@pytest.mark.parametrize("kind", ["uniform", "unigram"])
@pytest.mark.parametrize("never", [[3], [0, 5, 11]])
def test_never_drawn_ids_are_never_drawn_and_the_rest_renormalised(kind: str, never: list[int]):
    sampler = make_table(kind, seed=len(never), never_drawn=never)
    probs = restricted(table_probs(kind), never)
    ids, log_q = draw(sampler)
    assert not np.isin(ids, never).any()
    assert chi_square_p(ids, probs) > P_MIN
    np.testing.assert_allclose(log_q, np.log(probs[ids]), rtol=1e-5)
    np.testing.assert_allclose(sampler.probabilities().numpy(), probs, rtol=1e-5, atol=1e-12)


# ------------------------------------------------------------------------------ redraw
@pytest.mark.parametrize("kind", ["uniform", "unigram", "log-uniform"])
def test_redraw_follows_p_restricted_to_the_non_hits(kind: str):
    sampler = make_table(kind, seed=4, redraw=True)
    half = NUM_ROWS // 2
    # First half: positive 1, excluding 1 again, 3 twice and 6 (and padding): hits {1, 3, 6}.
    # Second half: positive 4, nothing excluded: hits {4}.
    positives = torch.tensor([1] * half + [4] * half)
    exclude = torch.tensor([[1, 3, -1, 6, 3]] * half + [[-1] * 5] * half)
    ids, log_q = sample_ids(sampler, positives, K, exclude)
    probs = table_probs(kind)
    for rows, hits in ((slice(0, half), [1, 3, 6]), (slice(half, None), [4])):
        expected = restricted(probs, hits)
        group_ids = ids[rows].reshape(-1)
        assert not np.isin(group_ids, hits).any()
        assert chi_square_p(group_ids, expected) > P_MIN
        # log_q is the log of the renormalised probability: log(p / (1 - P(distinct hits))).
        np.testing.assert_allclose(
            log_q[rows].reshape(-1), np.log(expected[group_ids]), rtol=1e-5, atol=1e-6
        )
        # ...which log_prob gives too, with -inf for the hits.
        log_prob = sampler.log_prob(
            torch.arange(V).expand(2, V), positives[rows][:2], exclude[rows][:2]
        )
        with np.errstate(divide="ignore"):
            np.testing.assert_allclose(
                log_prob.double().numpy(), np.log(np.tile(expected, (2, 1))), rtol=1e-5
            )


def test_redraw_negative_control_unrenormalised_p_is_rejected():
    # The redrawn histogram is not p itself: the helper notices the missing mass of the hits.
    sampler = make_table("unigram", seed=5, redraw=True)
    positives = torch.full((NUM_ROWS,), 4)
    ids, _ = sample_ids(sampler, positives, K)
    probs = table_probs("unigram")
    assert chi_square_p(ids.reshape(-1), restricted(probs, [4])) > P_MIN
    assert chi_square_p(ids.reshape(-1), probs) < 1e-6


# ------------------------------------------------------------------------------ mixtures
@pytest.mark.parametrize(("shares", "split"), [((0.5, 0.5), (5, 5)), ((0.3, 0.7), (3, 7))])
def test_mixture_with_integer_split_matches_the_weighted_sum(
    shares: tuple[float, float], split: tuple[int, int]
):
    mixed = MixedSampler(
        [UnigramSampler(power=0.75), LogUniformSampler()], list(shares), seed=sum(split)
    )
    mixed.setup(SORTED_COUNTS)
    first, second = table_probs("unigram"), table_probs("log-uniform")
    mixture = shares[0] * first + shares[1] * second
    ids, log_q = draw(mixed)
    assert chi_square_p(ids, mixture) > P_MIN
    np.testing.assert_allclose(log_q, np.log(mixture[ids]), rtol=1e-5)
    # Columns come in component order: each block follows its own component.
    blocks = ids.reshape(NUM_ROWS, K)
    assert chi_square_p(blocks[:, : split[0]].reshape(-1), first) > P_MIN
    assert chi_square_p(blocks[:, split[0] :].reshape(-1), second) > P_MIN
    # Negative control: shares off by 0.1 are told apart.
    assert chi_square_p(ids, (shares[0] + 0.1) * first + (shares[1] - 0.1) * second) < 1e-6


def test_mixture_with_a_fractional_split_matches_in_expectation():
    # K = 3 with shares 0.5 / 0.5: each call gives 1 or 2 columns to each component. The
    # components draw disjoint ids (ids < 6 vs >= 6), so every column shows who drew it.
    low, high = list(range(6)), list(range(6, V))
    mixed = MixedSampler(
        [UniformSampler(never_drawn=high), UnigramSampler(power=1.0, never_drawn=low)],
        [0.5, 0.5],
        seed=3,
    )
    mixed.setup(SORTED_COUNTS)
    q_low = restricted(np.ones(V), high)
    q_high = restricted(expected_probs(1.0, SORTED_COUNTS), low)
    calls, rows, k = 2500, 3, 3
    positives = torch.zeros(rows, dtype=torch.int64)
    low_columns, pooled, low_ids, high_ids = [], [], [], []
    for _ in range(calls):
        out = mixed.sample(positives, k)
        assert out.ids.shape == (rows, k) and out.log_q is not None
        ids = out.ids.numpy()
        from_low = ids < 6
        n_low = int(from_low[0].sum())
        assert n_low in (1, 2)
        # All rows of a call share the split, and the first component's columns come first.
        assert (from_low == (np.arange(k) < n_low)).all()
        # log_q weights each component by the columns it actually drew in this call.
        weights = np.where(from_low, n_low / k * q_low[ids], (k - n_low) / k * q_high[ids])
        np.testing.assert_allclose(out.log_q.double().numpy(), np.log(weights), rtol=1e-5)
        low_columns.append(n_low)
        pooled.append(ids.reshape(-1))
        low_ids.append(ids[from_low])
        high_ids.append(ids[~from_low])
    # The expected columns per component are share * K = 1.5 (binomial s.e. 0.01).
    assert np.mean(low_columns) == pytest.approx(1.5, abs=0.05)
    # Within a component the draws follow it; pooled, they follow 0.5 q_low + 0.5 q_high (with
    # 3 rows of K = 3 the random split adds exactly the variance of independent mixture draws).
    assert chi_square_p(np.concatenate(low_ids), q_low) > P_MIN
    assert chi_square_p(np.concatenate(high_ids), q_high) > P_MIN
    all_ids = np.concatenate(pooled)
    assert chi_square_p(all_ids, 0.5 * q_low + 0.5 * q_high) > P_MIN
    # Negative control: a 0.4 / 0.6 mixture is told apart.
    assert chi_square_p(all_ids, 0.4 * q_low + 0.6 * q_high) < 1e-6


@pytest.mark.parametrize(
    ("shares", "k"),
    [((0.5, 0.5), 3), ((0.2, 0.3, 0.5), 7), ((1 / 3, 1 / 3, 1 / 3), 2), ((0.1, 0.9), 1)],
)
def test_split_has_mean_share_times_k_and_sums_to_k(shares: tuple[float, ...], k: int):
    mixed = MixedSampler([UniformSampler() for _ in shares], list(shares), seed=0)
    generator = torch.Generator().manual_seed(k)
    calls = 10_000
    splits = np.array([mixed.split(k, generator) for _ in range(calls)])
    assert (splits.sum(axis=1) == k).all()
    assert (splits >= 0).all()
    exact = np.array(shares) * k
    # Each component gets the floor or the ceiling of share * K...
    assert (splits >= np.floor(exact + 1e-9)).all() and (splits <= np.ceil(exact - 1e-9)).all()
    # ...the ceiling with probability equal to the fractional part (s.e. at most 0.005).
    np.testing.assert_allclose(splits.mean(axis=0), exact, atol=0.025)


# ------------------------------------------------------------------------------ unique
def row_has_repeats(ids: np.ndarray) -> np.ndarray:
    ordered = np.sort(ids, axis=1)
    return (ordered[:, 1:] == ordered[:, :-1]).any(axis=1)


def subset_p(ids: np.ndarray, probs: dict[tuple[int, ...], float]) -> float:
    """Chi-square p-value of the rows' id sets against ``probs`` over sorted subsets."""
    subsets = sorted(probs)
    index = {subset: i for i, subset in enumerate(subsets)}
    rows = [index[tuple(sorted(row))] for row in ids.tolist()]
    return chi_square_p(np.asarray(rows), np.array([probs[s] for s in subsets]))


def successive_subset_probs(probs: np.ndarray, k: int) -> dict[tuple[int, ...], float]:
    """P(the first k distinct draws of i.i.d. ``probs`` form each k-subset)."""
    out: dict[tuple[int, ...], float] = {}
    support = [int(i) for i in np.flatnonzero(probs > 0)]
    for order in itertools.permutations(support, k):
        mass, left = 1.0, 1.0
        for item in order:
            mass *= probs[item] / left
            left -= probs[item]
        key = tuple(sorted(order))
        out[key] = out.get(key, 0.0) + mass
    return out


@pytest.mark.parametrize(("num_items", "k"), [(5, 2), (6, 3)])
def test_unique_uniform_makes_every_k_subset_equally_likely(num_items: int, k: int):
    sampler = UniformSampler(seed=num_items, unique=True)
    sampler.setup(torch.ones(num_items))
    ids = sampler.sample(torch.zeros(40_000, dtype=torch.int64), k).ids.numpy()
    assert not row_has_repeats(ids).any()
    subsets = list(itertools.combinations(range(num_items), k))
    assert subset_p(ids, {s: 1.0 / len(subsets) for s in subsets}) > P_MIN


def test_unique_redraw_uniform_is_uniform_over_subsets_of_the_non_hits():
    sampler = UniformSampler(seed=1, unique=True, redraw=True)
    sampler.setup(torch.ones(6))
    positives = torch.zeros(40_000, dtype=torch.int64)
    exclude = torch.full((40_000, 2), -1).index_fill_(1, torch.tensor([0]), 2)
    ids = sampler.sample(positives, 2, exclude=exclude).ids.numpy()
    assert not np.isin(ids, [0, 2]).any()
    subsets = list(itertools.combinations([1, 3, 4, 5], 2))
    assert subset_p(ids, {s: 1.0 / len(subsets) for s in subsets}) > P_MIN


def test_unique_unigram_subsets_follow_successive_sampling():
    counts = torch.tensor([1.0, 2.0, 3.0, 4.0, 10.0])
    sampler = UnigramSampler(power=1.0, seed=2, unique=True)
    sampler.setup(counts)
    probs = expected_probs(1.0, counts)
    ids = sampler.sample(torch.zeros(40_000, dtype=torch.int64), 2).ids.numpy()
    assert not row_has_repeats(ids).any()
    assert subset_p(ids, successive_subset_probs(probs, 2)) > P_MIN
    # Negative control: subsets in proportion to p_a * p_b (a different law) are rejected.
    naive = {s: probs[s[0]] * probs[s[1]] for s in itertools.combinations(range(5), 2)}
    total = sum(naive.values())
    assert subset_p(ids, {s: v / total for s, v in naive.items()}) < 1e-6


@pytest.mark.parametrize("kind", ["uniform", "unigram", "log-uniform"])
@pytest.mark.parametrize("k", [1, 4, 9])
def test_unique_rows_never_repeat(kind: str, k: int):
    sampler = make_table(kind, seed=k, unique=True)
    ids, log_q = sample_ids(sampler, torch.zeros(5000, dtype=torch.int64), k)
    assert not row_has_repeats(ids).any()
    assert np.isfinite(log_q).all() and (log_q <= 1e-6).all()


def implied_tries(log_q: np.ndarray, p: np.ndarray) -> np.ndarray:
    """``T`` from ``log_q = log(1 - (1 - p)^T)``."""
    return np.log(-np.expm1(log_q)) / np.log1p(-p)


def test_unique_log_q_is_the_inclusion_probability_with_t_near_k_on_a_large_vocabulary():
    num_items, k = 1_000_000, 5
    sampler = UniformSampler(seed=0, unique=True)
    sampler.setup(torch.ones(num_items))
    ids, log_q = sample_ids(sampler, torch.zeros(20_000, dtype=torch.int64), k)
    assert not row_has_repeats(ids).any()
    tries = implied_tries(log_q, np.full(log_q.shape, 1.0 / num_items))
    np.testing.assert_allclose(tries, np.round(tries), atol=1e-3)
    tries = np.round(tries)
    # One T per row (every id of a uniform row shares it), T >= K, and T == K unless a repeat
    # was drawn, which has probability about K^2 / (2V) = 1.25e-5 per row.
    assert (tries == tries[:, :1]).all()
    assert (tries >= k).all()
    assert np.mean(tries == k) > 0.999
    np.testing.assert_allclose(
        log_q[tries == k], np.log(-np.expm1(k * np.log1p(-1.0 / num_items))), rtol=1e-6
    )


def test_unique_tries_follow_the_coupon_collector_law():
    # Uniform over 5 ids, K = 3: T = 1 + G(4/5) + G(3/5), the draws until 3 distinct ids.
    sampler = UniformSampler(seed=7, unique=True)
    sampler.setup(torch.ones(5))
    ids, log_q = sample_ids(sampler, torch.zeros(40_000, dtype=torch.int64), 3)
    assert not row_has_repeats(ids).any()
    tries = implied_tries(log_q[:, 0], np.full(log_q.shape[0], 0.2))
    np.testing.assert_allclose(tries, np.round(tries), atol=1e-3)
    tries = np.round(tries).astype(np.int64)
    top = 40
    n = np.arange(top)
    # P(G = n) = (1 - s)^(n - 1) s for n >= 1, with success probabilities 4/5 then 3/5.
    first, second = (np.where(n >= 1, (1 - s) ** (n - 1.0) * s, 0.0) for s in (0.8, 0.6))
    law = np.convolve(first, second)[: top - 1]
    law = np.concatenate([[0.0], law])  # shift by the first draw: law[t] = P(T = t)
    law[-1] += 1.0 - law.sum()
    assert tries.min() >= 3 and tries.max() < top
    assert chi_square_p(tries, law) > P_MIN


@pytest.mark.parametrize("redraw", [False, True])
def test_unique_log_q_of_a_row_implies_one_t_for_every_id(redraw: bool):
    # Non-uniform p: each id's log_q gives T through its own p; all must agree within a row.
    sampler = make_table("unigram", seed=8, unique=True, redraw=redraw)
    positives = torch.full((5000,), 2)
    exclude = torch.tensor([[0, -1]]).expand(5000, 2)
    ids, log_q = sample_ids(sampler, positives, 4, exclude)
    probs = table_probs("unigram")
    if redraw:
        probs = restricted(probs, [0, 2])
        assert not np.isin(ids, [0, 2]).any()
    tries = implied_tries(log_q, probs[ids])
    np.testing.assert_allclose(tries, np.round(tries), atol=1e-3)
    tries = np.round(tries)
    assert (tries == tries[:, :1]).all()
    assert (tries >= 4).all() and (tries > 4).any()


# ------------------------------------------------------------------------------ in-batch
def in_batch_row_probs(flat: np.ndarray, never: list[int]) -> np.ndarray:
    """``(N, V)``: for each row, the probability that a valid candidate chosen at random holds
    each id, ``count(id) / (N' - c_i)`` over the ``N'`` drawable positions of the batch, ``c_i``
    of them holding row ``i``'s own positive (none when it is never drawn); 0 for that positive."""
    drawable = ~np.isin(flat, never)
    counts = np.bincount(flat[drawable], minlength=V).astype(np.float64)
    own = counts[flat]  # c_i: a never_drawn positive has no drawable position
    probs = np.tile(counts, (flat.size, 1))
    probs[np.arange(flat.size), flat] = 0.0
    return probs / (drawable.sum() - own)[:, None]


def test_in_batch_row_probs_helper_by_hand():
    flat = np.array([1, 2, 2, 3, 3, 3])
    probs = in_batch_row_probs(flat, [1])
    # Five drawable positions; row 0's positive (1) is never drawn, so it has no copy among them.
    np.testing.assert_allclose(probs[0, :4], [0, 0, 2 / 5, 3 / 5])
    np.testing.assert_allclose(probs[1, :4], [0, 0, 0, 1])  # 5 - 2 candidates, all 3s
    np.testing.assert_allclose(probs[3, :4], [0, 0, 1, 0])  # 5 - 3 candidates, all 2s


@pytest.mark.parametrize("never", [[], [5]])
@pytest.mark.parametrize("k", [4, 500])
def test_in_batch_log_q_is_the_batch_frequency(never: list[int], k: int):
    sampler = InBatchSampler(seed=1, never_drawn=never)
    sampler.setup(SORTED_COUNTS)
    gen = torch.Generator().manual_seed(4)
    probs = torch.from_numpy(expected_probs(1.0, SORTED_COUNTS))
    positives = torch.multinomial(probs, 300, replacement=True, generator=gen).view(30, 10)
    out = sampler.sample(positives, k)
    assert out.log_q is not None
    flat = positives.reshape(-1).numpy()
    assert np.isin(flat, never).any() == bool(never)  # the never_drawn id is in the batch
    row_probs = in_batch_row_probs(flat, never)
    # Each row's candidates form a distribution: the probabilities sum to one.
    np.testing.assert_allclose(row_probs.sum(axis=1), 1.0, rtol=1e-12)
    row_probs = row_probs.reshape(30, 10, V)
    ids, log_q, mask = out.ids.numpy(), out.log_q.double().numpy(), out.mask.numpy()
    assert ids.shape == (30, 10, min(k, 299))
    assert mask.any()
    expected = np.take_along_axis(row_probs, ids, axis=-1)
    np.testing.assert_allclose(log_q[mask], np.log(expected[mask]), rtol=1e-6)
    assert not np.isin(ids[mask], never).any()
    log_prob = sampler.log_prob(torch.arange(V).expand(30, 10, V), positives).double().numpy()
    with np.errstate(divide="ignore"):
        np.testing.assert_allclose(log_prob, np.log(row_probs), rtol=1e-6)
    # -inf exactly for the row's own positive, ids absent from the batch and never_drawn ids.
    assert np.isneginf(np.take_along_axis(log_prob, positives.numpy()[..., None], -1)).all()


@pytest.mark.parametrize("never", [[], [1]])
@pytest.mark.parametrize("max_keys", [1 << 22, 64], ids=["exact", "draw-and-redo"])
def test_in_batch_capped_draws_follow_exp_log_q(
    never: list[int], max_keys: int, monkeypatch: pytest.MonkeyPatch
):
    # Pooled over the rows of one positive, the valid capped draws follow exp(log_q): log_q is
    # the probability of a valid candidate of the row, not the id's frequency in the batch.
    monkeypatch.setattr(in_batch_module, "MAX_KEYS", max_keys)
    batch = torch.tensor([0] * 40 + [1] * 20 + [2] * 10 + [3] * 5 + [4] * 3 + [5] * 2)
    positives = batch[torch.randperm(batch.numel(), generator=torch.Generator().manual_seed(0))]
    sampler = InBatchSampler(seed=3, never_drawn=never)
    sampler.setup(SORTED_COUNTS)
    k, calls = 4, 150
    pooled: dict[int, list[np.ndarray]] = {0: [], 1: [], 2: []}
    pooled_log_q: dict[int, list[np.ndarray]] = {0: [], 1: [], 2: []}
    for _ in range(calls):
        out = sampler.sample(positives, k)
        assert out.log_q is not None and out.ids.shape == (batch.numel(), k)
        assert out.mask.all()  # every row has at least 40 valid candidates
        for positive in pooled:
            rows = positives == positive
            pooled[positive].append(out.ids[rows].reshape(-1).numpy())
            pooled_log_q[positive].append(out.log_q[rows].reshape(-1).double().numpy())
    for positive in pooled:
        ids = np.concatenate(pooled[positive])
        log_q = np.concatenate(pooled_log_q[positive])
        # log_q is one value per id for the rows of one positive...
        q = np.zeros(V)
        q[ids] = np.exp(log_q)
        np.testing.assert_allclose(np.exp(log_q), q[ids], rtol=1e-6)
        assert q[positive] == 0.0 and not np.isin(ids, never).any()
        # ...the ids drawn carry all the probability (nothing is left for undrawn ids)...
        assert q.sum() == pytest.approx(1.0, rel=1e-5)
        # ...and the draws follow it (chi_square_p renormalises, hence the sum above).
        assert chi_square_p(ids, q) > P_MIN, positive
        # Negative control: uniform over the same ids is told apart.
        assert chi_square_p(ids, (q > 0).astype(np.float64)) < 1e-6, positive


# ------------------------------------------------------------------------------ memory bank
def test_memory_bank_draws_follow_the_queue_content():
    size = 40
    sampler = MemoryBankSampler(size=size, seed=3)
    sampler.setup(SORTED_COUNTS)
    sampler.sample(torch.arange(V), 1)  # older entries, pushed out below
    # The call enqueues its positives first: the queue is then their last `size` entries.
    tail = torch.tensor([0] * 16 + [1] * 10 + [2] * 6 + [3] * 4 + [7] * 3 + [11])
    positives = torch.cat([torch.full((NUM_ROWS - size,), 9), tail[torch.randperm(
        size, generator=torch.Generator().manual_seed(0))]])
    ids, log_q = sample_ids(sampler, positives, K)
    queue = sampler.contents().numpy()
    assert sorted(queue.tolist()) == sorted(tail.tolist())
    share = np.bincount(queue, minlength=V) / size
    assert chi_square_p(ids.reshape(-1), share) > P_MIN
    np.testing.assert_allclose(log_q, np.log(share[ids]), rtol=1e-6)
    # The long-gone 9s and the first call's ids are out of the queue, hence never drawn...
    assert not np.isin(ids, [4, 5, 6, 8, 9, 10]).any()
    # ...and the draws weigh ids by their share of the slots, not uniformly over the distinct ids.
    distinct = np.isin(np.arange(V), queue) / np.unique(queue).size
    assert chi_square_p(ids.reshape(-1), distinct) < 1e-6


# ------------------------------------------------------------------------------ negative control
def test_negative_control_binned_helper_rejects_a_wrong_distribution():
    # With merged tail bins: a Zipf law over 50 000 ids is not one over 40 000 ids.
    log_uniform = LogUniformSampler(seed=9)
    log_uniform.setup(torch.arange(50_000, 0, -1, dtype=torch.float64))
    ids, _ = draw(log_uniform)
    assert chi_square_p(ids, log_uniform_probs(50_000)) > P_MIN
    wrong = np.concatenate([log_uniform_probs(40_000), np.full(10_000, 1e-12)])
    assert chi_square_p(ids, wrong / wrong.sum()) < 1e-6


def test_merge_small_bins_keeps_totals_and_the_minimum():
    observed = np.array([50.0, 20.0, 3.0, 1.0, 0.0, 2.0, 1.0])
    expected = np.array([48.0, 22.0, 2.5, 2.5, 1.0, 2.0, 1.0])
    merged_observed, merged_expected = merge_small_bins(observed, expected)
    np.testing.assert_array_equal(merged_observed, [50.0, 20.0, 7.0])
    np.testing.assert_array_equal(merged_expected, [48.0, 22.0, 9.0])
