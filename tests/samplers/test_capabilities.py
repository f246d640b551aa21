"""What each sampler declares it can do, and ``per_draw_log_q``.

The contract test (``test_contract.py``) checks that the declarations are true of every sampler's
behaviour; this file pins the declarations themselves, how composites derive theirs, and the
helpers built on them.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

from nslightning.samplers import (
    Draw,
    DrawRequest,
    HardNegativeSampler,
    InBatchSampler,
    IndexHardNegativeSampler,
    LogUniformSampler,
    MemoryBankSampler,
    MixedSampler,
    NegativeSampler,
    UniformSampler,
    UnigramSampler,
    per_draw_log_q,
)

Capabilities = tuple[bool, str | None, bool, bool, bool]
"""``(fixed_distribution, log_q_kind, needs_scorer, batch_based, draws_from_items())``."""

DECLARED: dict[str, tuple[Callable[[], NegativeSampler], Capabilities]] = {
    "uniform": (UniformSampler, (True, "per_draw", False, False, True)),
    "unigram": (UnigramSampler, (True, "per_draw", False, False, True)),
    "log-uniform": (LogUniformSampler, (True, "per_draw", False, False, True)),
    "unigram-never-drawn": (
        lambda: UnigramSampler(never_drawn=[0]), (True, "per_draw", False, False, True)
    ),
    "uniform-unique": (
        lambda: UniformSampler(unique=True), (False, "inclusion", False, False, True)
    ),
    "unigram-redraw": (
        lambda: UnigramSampler(redraw=True), (False, "per_draw", False, False, True)
    ),
    "log-uniform-unique-redraw": (
        lambda: LogUniformSampler(unique=True, redraw=True),
        (False, "inclusion", False, False, True),
    ),
    "in-batch": (InBatchSampler, (False, "per_draw", False, True, False)),
    "in-batch-all-others": (
        lambda: InBatchSampler(all_others=True), (False, "per_draw", False, True, False)
    ),
    "memory-bank": (MemoryBankSampler, (False, "per_draw", False, True, True)),
    "mixed-in-batch-unigram": (
        lambda: MixedSampler([InBatchSampler(), UnigramSampler()], [0.5, 0.5]),
        (False, "per_draw", False, True, False),
    ),
    "mixed-uniform-log-uniform": (
        lambda: MixedSampler([UniformSampler(), LogUniformSampler()], [0.5, 0.5]),
        (False, "per_draw", False, False, True),
    ),
    "mixed-hard-uniform": (
        lambda: MixedSampler([HardNegativeSampler(UniformSampler()), UniformSampler()], [0.5, 0.5]),
        (False, None, True, False, True),
    ),
    "hard-unigram": (
        lambda: HardNegativeSampler(UnigramSampler()), (False, None, True, False, True)
    ),
    "hard-in-batch": (
        lambda: HardNegativeSampler(InBatchSampler()), (False, None, True, True, False)
    ),
    "hard-memory-bank": (
        lambda: HardNegativeSampler(MemoryBankSampler()), (False, None, True, True, True)
    ),
    "index-hard": (IndexHardNegativeSampler, (False, None, True, False, True)),
}


@pytest.mark.parametrize("name", sorted(DECLARED))
def test_each_sampler_declares_its_capabilities(name: str) -> None:
    factory, expected = DECLARED[name]
    sampler = factory()
    declared = (
        sampler.fixed_distribution, sampler.log_q_kind, sampler.needs_scorer,
        sampler.batch_based, sampler.draws_from_items(),
    )
    assert declared == expected


def test_the_base_class_defaults() -> None:
    assert NegativeSampler.fixed_distribution is False
    assert NegativeSampler.log_q_kind == "per_draw"
    assert NegativeSampler.needs_scorer is False
    assert NegativeSampler.batch_based is False


def test_a_sampler_that_does_not_draw_from_the_items_is_batch_based() -> None:
    for factory, _ in DECLARED.values():
        sampler = factory()
        assert sampler.draws_from_items() or sampler.batch_based


# ---------------------------------------------------------------------------------- mixtures
class InclusionSampler(NegativeSampler):
    """Declares inclusion probabilities and has no ``unique`` attribute."""

    log_q_kind = "inclusion"

    def _setup(self, counts: torch.Tensor) -> None:
        pass

    def _draw(self, request: DrawRequest) -> Draw:
        raise NotImplementedError


def test_a_mixture_refuses_inclusion_probabilities_by_their_declared_kind() -> None:
    sampler = InclusionSampler()
    assert not hasattr(sampler, "unique")
    with pytest.raises(ValueError, match="inclusion probability"):
        MixedSampler([UniformSampler(), sampler], [0.5, 0.5])
    with pytest.raises(ValueError, match=r"UniformSampler\(unique=True\) cannot be mixed"):
        MixedSampler([UniformSampler(), UniformSampler(unique=True)], [0.5, 0.5])
    MixedSampler([UniformSampler(), UniformSampler(redraw=True)], [0.5, 0.5])  # per draw: fine


def test_a_nested_mixture_derives_its_capabilities_from_every_level() -> None:
    inner = MixedSampler([HardNegativeSampler(InBatchSampler()), UniformSampler()], [0.5, 0.5])
    outer = MixedSampler([UnigramSampler(), inner], [0.5, 0.5])
    assert (outer.log_q_kind, outer.needs_scorer, outer.batch_based) == (None, True, True)
    assert not outer.draws_from_items() and not outer.fixed_distribution


# ---------------------------------------------------------------------------------- K >= V
@pytest.mark.parametrize("name", sorted(DECLARED))
def test_k_at_least_v_is_refused_exactly_for_samplers_that_draw_from_the_items(name: str) -> None:
    factory, (*_, draws_from_items) = DECLARED[name]
    sampler = factory()
    sampler.check_num_negatives(9, 10, "vocabulary size", "words", "")  # K < V: always fine
    if draws_from_items:  # a memory bank too: K draws with replacement repeat when K >= V
        with pytest.raises(ValueError, match=r"num_negatives=10 >= vocabulary size 10"):
            sampler.check_num_negatives(10, 10, "vocabulary size", "words", "")
    else:  # K only caps the batch's other positives
        sampler.check_num_negatives(10, 10, "vocabulary size", "words", "")


# ---------------------------------------------------------------------------------- per_draw_log_q
def test_per_draw_log_q_leaves_per_draw_probabilities_alone() -> None:
    log_q = torch.log(torch.tensor([[0.1, 0.2, 0.3]]))
    assert per_draw_log_q(log_q, "per_draw", 3) is log_q
    assert per_draw_log_q(log_q, None, 3) is None


@pytest.mark.parametrize("num_draws", [1, 2, 7])
def test_per_draw_log_q_of_an_inclusion_probability_keeps_the_expected_count(num_draws: int):
    # pi is the id's expected count among K distinct draws: K q must give it back.
    pi = torch.tensor([[0.5, 0.25, 1.0], [1e-6, 0.9, 0.01]])
    per_draw = per_draw_log_q(pi.log(), "inclusion", num_draws)
    assert per_draw is not None
    torch.testing.assert_close(num_draws * per_draw.exp(), pi)
    torch.testing.assert_close(per_draw, pi.log() - math.log(num_draws))


def test_per_draw_log_q_of_a_unique_draw_corrects_sampled_softmax_by_log_pi() -> None:
    # Sampled softmax subtracts log(K q); with unique=True that must be log(pi), not log(K pi).
    sampler = UnigramSampler(power=1.0, unique=True, seed=0)
    sampler.setup(torch.tensor([10.0, 5.0, 3.0, 1.0, 1.0]))
    negatives = sampler.sample(torch.tensor([0, 1, 2]), 3)
    assert negatives.log_q is not None
    per_draw = per_draw_log_q(negatives.log_q, sampler.log_q_kind, negatives.ids.shape[-1])
    assert per_draw is not None
    torch.testing.assert_close(per_draw + math.log(3), negatives.log_q)


def test_per_draw_log_q_refuses_what_it_cannot_convert() -> None:
    log_q = torch.zeros(2, 0)
    with pytest.raises(ValueError, match="num_draws"):
        per_draw_log_q(log_q, "inclusion", 0)
    with pytest.raises(ValueError, match="kind"):
        per_draw_log_q(log_q, "expected_count", 2)  # type: ignore[arg-type]
