"""TableSampler options: never_drawn, unique, redraw, and the log-uniform closed form."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from nslightning.samplers import LogUniformSampler, TableSampler, UniformSampler, UnigramSampler
from nslightning.samplers import table as table_module
from nslightning.samplers.table import first_unique

COUNTS = torch.tensor([9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 0.0])  # sorted: fine for log-uniform
V = COUNTS.numel()
P_MIN = 1e-3

Factory = Callable[..., TableSampler]
FACTORIES: dict[str, Factory] = {
    "uniform": UniformSampler,
    "unigram": lambda **kw: UnigramSampler(power=0.75, **kw),
    "log_uniform": LogUniformSampler,
}


@pytest.fixture(params=sorted(FACTORIES))
def factory(request: pytest.FixtureRequest) -> Factory:
    return FACTORIES[request.param]


def make(factory: Factory, counts: torch.Tensor = COUNTS, **kwargs: object) -> TableSampler:
    sampler = factory(**kwargs)
    sampler.setup(counts)
    return sampler


def expected_probs(sampler: TableSampler, counts: torch.Tensor = COUNTS) -> torch.Tensor:
    """The table's distribution before options, computed independently of the sampler."""
    n = counts.numel()
    if isinstance(sampler, UnigramSampler):
        weights = counts.double() ** sampler.power
    elif isinstance(sampler, LogUniformSampler):
        ranks = torch.arange(n, dtype=torch.float64)
        weights = torch.log((ranks + 2) / (ranks + 1))
    else:
        weights = torch.ones(n, dtype=torch.float64)
    weights[sampler.never_drawn] = 0.0
    return weights / weights.sum()


# ---------------------------------------------------------------------------- never_drawn
def test_never_drawn_out_of_range_raises_at_setup(factory: Factory):
    sampler = factory(never_drawn=[2, V])
    with pytest.raises(ValueError, match=f"never_drawn id {V} is out of range"):
        sampler.setup(COUNTS)


def test_negative_never_drawn_raises(factory: Factory):
    with pytest.raises(ValueError, match="never_drawn ids must be >= 0"):
        factory(never_drawn=[3, -1])


def test_never_drawn_covering_every_item_raises(factory: Factory):
    sampler = factory(never_drawn=list(range(V)))
    with pytest.raises(ValueError, match="probability zero"):
        sampler.setup(COUNTS)


def test_never_drawn_ids_are_not_drawn_and_the_rest_renormalised(factory: Factory):
    sampler = make(factory, never_drawn=[0, 3, 3])
    assert sampler.never_drawn == [0, 3]
    positives = torch.full((20_000,), 5)
    out = sampler.sample(positives, 5)
    assert not torch.isin(out.ids, torch.tensor([0, 3])).any()
    probs = expected_probs(sampler)
    torch.testing.assert_close(sampler.probabilities(), probs, rtol=1e-5, atol=1e-7)
    assert out.log_q is not None
    torch.testing.assert_close(out.log_q, probs.log()[out.ids].float())
    support = probs > 0
    observed = torch.bincount(out.ids.reshape(-1), minlength=V).double()
    expected = probs[support] * out.ids.numel()
    assert chisquare(observed[support].numpy(), expected.numpy()).pvalue > P_MIN


# ---------------------------------------------------------------------------- unique
@pytest.mark.parametrize("never_drawn", [None, [1, 4]])
@pytest.mark.parametrize("k", [1, 3, 5])
def test_unique_rows_have_no_repeated_id(factory: Factory, never_drawn: list[int] | None, k: int):
    sampler = make(factory, unique=True, never_drawn=never_drawn, seed=k)
    gen = torch.Generator().manual_seed(k)
    positives = torch.randint(0, V, (500,), generator=gen)
    out = sampler.sample(positives, k)
    assert out.ids.shape == (500, k)
    sorted_ids = out.ids.sort(dim=1).values
    assert (sorted_ids[:, 1:] != sorted_ids[:, :-1]).all()
    assert torch.equal(out.mask, out.ids != positives[:, None])
    probs = expected_probs(sampler)
    assert (probs[out.ids] > 0).all()
    # log_q is an inclusion probability: at least the one-draw probability, at most 1.
    assert out.log_q is not None
    assert (out.log_q <= 1e-6).all()
    assert (out.log_q >= probs.log()[out.ids].float() - 1e-5).all()


def test_unique_k_equal_to_the_support_takes_every_drawable_id(factory: Factory):
    sampler = make(factory, unique=True, never_drawn=[2])
    support = int((expected_probs(sampler) > 0).sum())
    assert sampler.support == support
    out = sampler.sample(torch.tensor([0, 1, 5, 6]), support)
    drawable = sorted(i for i in range(V) if expected_probs(sampler)[i] > 0)
    for row in out.ids.tolist():
        assert sorted(row) == drawable


def test_unique_k_above_the_support_raises(factory: Factory):
    sampler = make(factory, unique=True, never_drawn=[2])
    with pytest.raises(ValueError, match=f"only {sampler.support} items can be drawn"):
        sampler.sample(torch.tensor([0]), sampler.support + 1)


def test_unique_zero_counts_are_outside_the_support():
    sampler = make(FACTORIES["unigram"], unique=True)
    assert sampler.support == V - 1  # the last count is zero
    with pytest.raises(ValueError, match="only 7 items"):
        sampler.sample(torch.tensor([0]), V)


def test_unique_log_q_is_the_inclusion_probability_for_a_single_draw():
    # K = 1: the first draw is always distinct, T = 1 and 1 - (1 - p)^1 = p.
    sampler = make(FACTORIES["unigram"], unique=True, seed=3)
    out = sampler.sample(torch.zeros(200, dtype=torch.int64), 1)
    probs = expected_probs(sampler)
    assert out.log_q is not None
    torch.testing.assert_close(out.log_q.double(), probs.log()[out.ids], rtol=1e-5, atol=1e-6)


def test_unique_with_a_concentrated_distribution_terminates():
    counts = torch.tensor([100.0, 1.0, 1.0, 1.0, 1.0])  # power 2: p(others) = 1e-4 each
    sampler = UnigramSampler(power=2.0, unique=True, seed=0)
    sampler.setup(counts)
    out = sampler.sample(torch.tensor([1, 2, 3]), 2)
    sorted_ids = out.ids.sort(dim=1).values
    assert (sorted_ids[:, 1] != sorted_ids[:, 0]).all()
    assert (out.ids == 0).any(dim=1).all()  # the dominant item is always among the two
    assert out.log_q is not None and torch.isfinite(out.log_q).all()


def test_unique_gives_up_with_a_clear_error(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(table_module, "UNIQUE_STREAM_LIMIT", 64)
    counts = torch.tensor([1e6, 1.0, 1.0, 1.0])  # power 2: p(others) = 1e-12 each
    sampler = UnigramSampler(power=2.0, unique=True, seed=0)
    sampler.setup(counts)
    with pytest.raises(RuntimeError, match="too concentrated"):
        sampler.sample(torch.tensor([1, 2]), 3)


def test_unique_with_redraw_has_no_hits_and_no_repeats(factory: Factory):
    sampler = make(factory, unique=True, redraw=True, seed=2)
    gen = torch.Generator().manual_seed(0)
    positives = torch.randint(0, V - 1, (300,), generator=gen)
    exclude = torch.randint(-1, V, (300, 2), generator=gen)
    out = sampler.sample(positives, 3, exclude=exclude)
    assert out.mask.all()
    assert not (out.ids == positives[:, None]).any()
    assert not (out.ids[:, :, None] == exclude[:, None, :]).any()
    sorted_ids = out.ids.sort(dim=1).values
    assert (sorted_ids[:, 1:] != sorted_ids[:, :-1]).all()


# ---------------------------------------------------------------------------- first_unique
def test_first_unique_on_a_hand_made_stream():
    stream = torch.tensor([[3, 3, 1, 3, 2, 5], [4, 4, 4, 4, 4, 4], [0, 1, 0, 1, 2, 2]])
    chosen, tries, done = first_unique(stream, 2)
    assert done.tolist() == [True, False, True]
    assert chosen.tolist() == [[3, 1], [0, 1]]
    assert tries[0].item() == 3.0 and tries[2].item() == 2.0
    assert tries.dtype == torch.float64

    chosen, tries, done = first_unique(stream, 3)
    assert done.tolist() == [True, False, True]
    assert chosen.tolist() == [[3, 1, 2], [0, 1, 2]]
    assert tries[0].item() == 5.0 and tries[2].item() == 5.0

    chosen, tries, done = first_unique(stream, 4)
    assert done.tolist() == [True, False, False]
    assert chosen.tolist() == [[3, 1, 2, 5]]
    assert tries[0].item() == 6.0

    chosen, _, done = first_unique(stream, 1)
    assert done.all() and chosen.tolist() == [[3], [4], [0]]


def test_first_unique_with_skipped_draws():
    stream = torch.tensor([[3, 3, 1, 3, 2, 5], [7, 6, 7, 6, 8, 9]])
    skip = torch.tensor([[True, True, False, True, False, False], [True, False, True, False,
                                                                   False, False]])
    chosen, tries, done = first_unique(stream, 2, skip)
    assert done.tolist() == [True, True]
    assert chosen.tolist() == [[1, 2], [6, 8]]
    # Row 0: the 2 is the 5th draw, three of them skipped: 2 tries. Row 1: 8 is the 5th draw,
    # two skipped: 3 tries.
    assert tries.tolist() == [2.0, 3.0]

    chosen, tries, done = first_unique(stream, 3, skip)
    assert done.tolist() == [True, True]
    assert chosen.tolist() == [[1, 2, 5], [6, 8, 9]]
    assert tries.tolist() == [3.0, 4.0]

    _, _, done = first_unique(stream, 4, skip)
    assert done.tolist() == [False, False]


# ---------------------------------------------------------------------------- redraw
def test_redraw_leaves_no_hits_when_possible(factory: Factory):
    sampler = make(factory, redraw=True, seed=1)
    gen = torch.Generator().manual_seed(2)
    positives = torch.randint(0, 3, (2000,), generator=gen)  # frequent ids: many first hits
    exclude = torch.randint(-1, 4, (2000, 3), generator=gen)
    out = sampler.sample(positives, 6, exclude=exclude)
    assert out.mask.all()
    assert not (out.ids == positives[:, None]).any()
    assert not (out.ids[:, :, None] == exclude[:, None, :]).any()


def test_redraw_log_q_by_hand():
    sampler = make(FACTORIES["unigram"], redraw=True, seed=4)
    probs = (COUNTS.double() ** 0.75) / (COUNTS.double() ** 0.75).sum()
    positives = torch.tensor([3, 0, 6])
    # Row 0 repeats its positive in exclude and pads with -1; row 1 excludes nothing; row 2
    # excludes a zero-count id (which adds no mass).
    exclude = torch.tensor([[5, 3, 5, -1], [-1, -1, -1, -1], [7, 2, -1, -1]])
    out = sampler.sample(positives, 50, exclude=exclude)
    hit_mass = torch.tensor(
        [probs[3] + probs[5], probs[0], probs[6] + probs[2]], dtype=torch.float64
    )
    expected = probs.log()[out.ids] - torch.log1p(-hit_mass)[:, None]
    assert out.log_q is not None
    torch.testing.assert_close(out.log_q.double(), expected, rtol=1e-5, atol=1e-5)
    # The renormalised probabilities of the drawable ids sum to one in each row.
    all_ids = torch.arange(V).expand(3, V)
    log_prob = sampler.log_prob(all_ids, positives, exclude)
    torch.testing.assert_close(log_prob.double().exp().sum(1), torch.ones(3, dtype=torch.float64))


def test_redraw_log_prob_is_minus_inf_for_hits():
    sampler = make(FACTORIES["uniform"], redraw=True)
    positives = torch.tensor([1, 4])
    exclude = torch.tensor([[2, -1], [4, 0]])
    ids = torch.tensor([[1, 2, 3, 0], [4, 0, 1, 2]])
    log_prob = sampler.log_prob(ids, positives, exclude)
    assert torch.isneginf(log_prob[0, :2]).all() and torch.isneginf(log_prob[1, :2]).all()
    torch.testing.assert_close(log_prob[0, 2:], torch.full((2,), math.log(1 / (V - 2))))
    torch.testing.assert_close(log_prob[1, 2:], torch.full((2,), math.log(1 / (V - 2))))


def test_without_redraw_hits_are_masked_not_redrawn():
    sampler = make(FACTORIES["uniform"], seed=0)
    positives = torch.full((1000,), 2)
    out = sampler.sample(positives, 4, exclude=torch.tensor([5]).expand(1000, 1))
    assert (out.ids == 2).any() and (out.ids == 5).any()
    assert torch.equal(out.mask, (out.ids != 2) & (out.ids != 5))
    assert out.log_q is not None
    torch.testing.assert_close(out.log_q, torch.full_like(out.log_q, math.log(1 / V)))


def test_redraw_row_whose_every_drawable_id_is_a_hit_stays_masked(factory: Factory):
    # Only id 2 can be drawn: the row whose positive is 2 has nothing else; the call ends.
    sampler = make(factory, redraw=True, never_drawn=[0, 1, 3, 4, 5, 6, 7])
    positives = torch.tensor([2, 0, 2, 5])
    out = sampler.sample(positives, 3)
    assert out.ids.eq(2).all()
    assert out.mask.tolist() == [[False] * 3, [True] * 3, [False] * 3, [True] * 3]
    assert out.log_q is not None
    torch.testing.assert_close(out.log_q[1], torch.zeros(3))  # id 2 has probability 1 there


def test_redraw_log_prob_of_undrawable_ids_is_minus_inf_even_in_an_all_hit_row():
    # log_prob promises -inf for ids that cannot be drawn. In the row whose positive is 2 no id
    # can be drawn at all (hit mass 1), yet nothing should turn into NaN.
    sampler = make(FACTORIES["uniform"], redraw=True, never_drawn=[0, 1, 3, 4, 5, 6, 7])
    ids = torch.tensor([[2, 0, 5], [2, 0, 5]])
    log_prob = sampler.log_prob(ids, torch.tensor([2, 0]))
    assert not torch.isnan(log_prob).any(), log_prob
    assert torch.isneginf(log_prob[0]).all()
    assert log_prob[1].tolist() == [0.0, -math.inf, -math.inf]


# ---------------------------------------------------------------------------- log-uniform
def test_log_uniform_warns_on_unsorted_counts():
    sampler = LogUniformSampler()
    with pytest.warns(UserWarning, match="sorted by decreasing frequency"):
        sampler.setup(torch.tensor([5.0, 9.0, 1.0]))


@pytest.mark.parametrize(
    "counts", [COUNTS, torch.tensor([3.0, 3.0, 3.0]), torch.tensor([1.0]), torch.zeros(4)]
)
def test_log_uniform_does_not_warn_on_sorted_counts(counts: torch.Tensor):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        LogUniformSampler().setup(counts)


@pytest.mark.parametrize("num_items", [1, 2, 3])
def test_log_uniform_closed_form_for_tiny_vocabularies(num_items: int):
    sampler = LogUniformSampler(seed=num_items)
    sampler.setup(torch.ones(num_items))
    assert sampler.accept.numel() == 0  # the closed form, not a table
    gen = torch.Generator().manual_seed(0)
    ids = torch.cat([sampler._closed_form_draw(5000, gen) for _ in range(4)])
    assert ids.dtype == torch.int64
    assert int(ids.min()) >= 0 and int(ids.max()) < num_items
    ranks = np.arange(num_items)
    probs = np.log((ranks + 2) / (ranks + 1)) / math.log(num_items + 1)
    observed = np.bincount(ids.numpy(), minlength=num_items).astype(np.float64)
    if num_items > 1:
        assert chisquare(observed, probs * ids.numel()).pvalue > P_MIN
    else:
        assert observed.tolist() == [ids.numel()]


@pytest.mark.parametrize("num_items", [1, 2, 1000, 10_000_000])
def test_log_uniform_closed_form_boundaries(num_items: int, monkeypatch: pytest.MonkeyPatch):
    # u at the ends of [0, 1): 0, the float64 just below 1 and the float32 just below 1.
    u = torch.tensor([0.0, 1.0 - 2.0**-53, 1.0 - 2.0**-24, 0.5], dtype=torch.float64)

    def fixed_rand(num: int, **kwargs: object) -> torch.Tensor:
        return u[:num].clone()

    sampler = LogUniformSampler()
    sampler.vocab_size = num_items  # all the closed form reads (setup at V = 10^7 is slow)
    monkeypatch.setattr(torch, "rand", fixed_rand)
    ids = sampler._closed_form_draw(4, torch.Generator())
    assert ids[0].item() == 0
    assert ids[1].item() == num_items - 1  # the top of the range, not one past it
    assert 0 <= ids[2].item() < num_items
    assert ids[3].item() == math.floor(math.sqrt(num_items + 1)) - 1


def test_log_uniform_sample_with_never_drawn_uses_its_table():
    sampler = LogUniformSampler(never_drawn=[0], seed=1)
    sampler.setup(torch.ones(5))
    assert sampler.accept.numel() == 5
    out = sampler.sample(torch.full((2000,), 4), 3)
    assert not (out.ids == 0).any()
    assert int(out.ids.max()) < 5
