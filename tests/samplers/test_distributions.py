"""The samplers draw from the distributions they claim (chi-square goodness of fit)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from nslightning.samplers import (
    NegativeSampler,
    UniformSampler,
    UnigramSampler,
    build_alias_table,
    draw_from_alias,
)

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


def chi_square_p(ids: np.ndarray, probs: np.ndarray) -> float:
    observed = np.bincount(ids, minlength=probs.size).astype(np.float64)
    support = probs > 0
    assert observed[~support].sum() == 0, "drew an item of probability zero"
    expected = probs[support] * ids.size
    return float(chisquare(observed[support], expected).pvalue)


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
