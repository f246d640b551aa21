"""The contract every loss class in ``nslightning.losses`` must honour.

The classes are collected from ``nslightning.losses.__all__`` (the concrete subclasses of
:class:`NegativeSamplingLoss`), so a new loss runs through every generic test below without a
line here; a class without a registered case runs with its default constructor. What differs
between losses is declared in one place, :data:`CASES`: the functional form each class wraps,
a naive reference (plain Python floats, row by row, from the formulas of the docstrings) and
what a constant shift of ``log_q`` does. :func:`test_every_class_is_registered` asks a new class
for its functional form.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest
import torch
from torch import Tensor

import nslightning.losses as losses
from nslightning.deprecation import NSLightningDeprecationWarning
from nslightning.losses import (
    DebiasedContrastiveLoss,
    HardNegativeContrastiveLoss,
    InfoNCELoss,
    NCELoss,
    NegativeSamplingLoss,
    SampledSoftmaxLoss,
    SGNSLoss,
    WeightedContrastiveLoss,
)
from nslightning.losses import functional as fn

F64 = torch.float64
B, C, K = 4, 3, 5
KNOWN = {SGNSLoss, WeightedContrastiveLoss, InfoNCELoss, DebiasedContrastiveLoss,
         HardNegativeContrastiveLoss, SampledSoftmaxLoss, NCELoss}


@dataclass(frozen=True)
class Inputs:
    pos: Tensor
    neg: Tensor
    neg_mask: Tensor | None = None
    log_q: Tensor | None = None
    pos_log_q: Tensor | None = None
    weights: Tensor | None = None

    def kwargs(self) -> dict[str, Tensor | None]:
        return {"neg_mask": self.neg_mask, "log_q": self.log_q, "pos_log_q": self.pos_log_q,
                "weights": self.weights}

    def rows(self) -> list[tuple[float, list[float], list[bool], list[float], float, float]]:
        """Per pair: score, negatives, kept, log q, positive's log q, weight (flattened)."""
        n = self.pos.numel()
        neg = self.neg.reshape(n, -1).tolist()
        shape = self.neg.shape
        mask = (torch.ones(shape, dtype=torch.bool) if self.neg_mask is None
                else self.neg_mask.expand(shape)).reshape(n, -1).tolist()
        log_q = (torch.zeros(shape) if self.log_q is None
                 else self.log_q.expand(shape)).reshape(n, -1).tolist()
        pos_log_q = [0.0] * n if self.pos_log_q is None else self.pos_log_q.reshape(-1).tolist()
        weights = ([1.0] * n if self.weights is None
                   else self.weights.expand(self.pos.shape).reshape(-1).tolist())
        return list(zip(self.pos.reshape(-1).tolist(), neg, mask, log_q, pos_log_q, weights,
                        strict=True))


def make_inputs(shape: tuple[int, ...] = (B,), seed: int = 0, dtype: torch.dtype = F64) -> Inputs:
    """Cosine-like scores, a mask with one fully masked row, log q, pos log q, pair weights."""
    g = torch.Generator().manual_seed(seed)
    pos = torch.rand(shape, generator=g, dtype=dtype) * 2 - 1
    neg = torch.rand((*shape, K), generator=g, dtype=dtype) * 2 - 1
    mask = torch.rand((*shape, K), generator=g) > 0.4
    mask.reshape(-1, K)[:, 0] = True
    mask.reshape(-1, K)[1] = False  # a row without kept negatives
    log_q = (torch.rand((*shape, K), generator=g, dtype=dtype) * 0.3 + 0.01).log()
    pos_log_q = (torch.rand(shape, generator=g, dtype=dtype) * 0.3 + 0.01).log()
    weights = torch.rand(shape, generator=g, dtype=dtype) * 2 + 0.1
    return Inputs(pos, neg, mask, log_q, pos_log_q, weights)


# ------------------------------------------------------------------------ naive references
def softplus(x: float) -> float:
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


def logsumexp(values: list[float]) -> float:
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


PerPair = Callable[[float, list[float], list[bool], list[float], float], float]
Reference = Callable[[Inputs, str], float]


def per_pair(loss: PerPair) -> Reference:
    """The reference of a per-pair loss: weighted sum, or weighted sum / total weight."""

    def reference(x: Inputs, reduction: str) -> float:
        values = [(w * loss(s, ns, kept, lq, plq), w) for s, ns, kept, lq, plq, w in x.rows()]
        total = sum(v for v, _ in values)
        return total if reduction == "sum" else total / sum(w for _, w in values)

    return reference


def sgns(lam: float) -> Reference:
    return per_pair(lambda s, ns, kept, lq, plq: softplus(-s) + lam * sum(
        softplus(n) for n, k in zip(ns, kept, strict=True) if k))


def weighted(lam: float, ell: Callable[[float, float], float]) -> Reference:
    def reference(x: Inputs, reduction: str) -> float:
        rows = x.rows()
        pos_total = sum(w for *_, w in rows)
        positive = sum(w * ell(s, 1.0) for s, *_, w in rows) / pos_total
        pairs = [(n, w) for _, ns, kept, _, _, w in rows
                 for n, k in zip(ns, kept, strict=True) if k]
        negative = sum(w * ell(n, -1.0) for n, w in pairs) / sum(w for _, w in pairs)
        mean = positive + lam * negative
        return mean * pos_total if reduction == "sum" else mean

    return reference


def info_nce(tau: float, correct: bool) -> Reference:
    def loss(s: float, ns: list[float], kept: list[bool], lq: list[float], plq: float) -> float:
        log_count = math.log(max(sum(kept), 1))  # the kept negatives
        z = s / tau  # the positive is never corrected (Yi et al.)
        logits = [n / tau - ((q + log_count) if correct else 0.0)
                  for n, k, q in zip(ns, kept, lq, strict=True) if k]
        return logsumexp([z, *logits]) - z

    return per_pair(loss)


def sampled_softmax(s: float, ns: list[float], kept: list[bool], lq: list[float],
                    plq: float) -> float:
    log_count = math.log(len(ns))  # every draw
    z = s - (plq + log_count)
    logits = [n - (q + log_count) for n, k, q in zip(ns, kept, lq, strict=True) if k]
    return logsumexp([z, *logits]) - z


def nce(s: float, ns: list[float], kept: list[bool], lq: list[float], plq: float) -> float:
    log_count = math.log(len(ns))
    return softplus(-(s - plq - log_count)) + sum(
        softplus(n - q - log_count) for n, k, q in zip(ns, kept, lq, strict=True) if k)


def debiased(beta: float, correct: bool, tau: float = 0.5, tau_plus: float = 0.1,
             min_score: float = -1.0) -> Reference:
    """Chuang et al. / Robinson et al.: ``w = softmax(β b_k - log q_k)`` over the kept ``k``,
    ``g = max((Σ w_k e^{b_k} - τ+ e^a) / (1 - τ+), e^{min_score/τ})``,
    ``loss = -log(e^a / (e^a + N g))``; 0 without kept negatives."""

    def loss(s: float, ns: list[float], kept: list[bool], lq: list[float], plq: float) -> float:
        pairs = [(n / tau, q) for n, k, q in zip(ns, kept, lq, strict=True) if k]
        if not pairs:
            return 0.0
        a = s / tau
        tilts = [beta * b - (q if correct else 0.0) for b, q in pairs]
        top = max(tilts)
        w = [math.exp(t - top) for t in tilts]
        mass = sum(wk * math.exp(b) for wk, (b, _) in zip(w, pairs, strict=True)) / sum(w)
        g = max((mass - tau_plus * math.exp(a)) / (1 - tau_plus), math.exp(min_score / tau))
        return -math.log(math.exp(a) / (math.exp(a) + len(pairs) * g))

    return per_pair(loss)


def logistic(s: float, y: float) -> float:
    return softplus(-y * s)


def squared(s: float, y: float) -> float:
    return (1.0 - y * s) ** 2


# ------------------------------------------------------------------------ the cases
Functional = Callable[..., Tensor]


@dataclass(frozen=True)
class Case:
    """One configured loss: ``make(reduction)``, the functional form it wraps (same keyword
    arguments), a naive reference, and what shifting ``log_q`` and ``pos_log_q`` by a constant
    ``c`` does: ``"invariant"``, ``"score_shift"`` (the same as shifting the scores by
    ``-c``: the logits are ``s - log(K q)``), or ``"neg_score_shift"`` (the same as shifting
    the negatives' scores by ``-c τ``: only the negatives are corrected)."""

    name: str
    make: Callable[[str], NegativeSamplingLoss]
    functional: Functional | None = None
    reference: Reference | None = None
    log_q_shift: str | None = None


def _info_nce(temperature: float, correct: bool) -> Functional:
    def call(pos: Tensor, neg: Tensor, *, log_q: Any, pos_log_q: Any, **kw: Any) -> Tensor:
        return fn.info_nce_loss(pos, neg, temperature=temperature, log_q=log_q if correct else
                                None, **kw)
    return call


def _debiased(beta: float, correct: bool) -> Functional:
    def call(pos: Tensor, neg: Tensor, *, log_q: Any, pos_log_q: Any, **kw: Any) -> Tensor:
        return fn.debiased_contrastive_loss(pos, neg, beta=beta, log_q=log_q if correct else None,
                                            **kw)
    return call


def _ignoring_log_q(function: Functional, **hyper: Any) -> Functional:
    def call(pos: Tensor, neg: Tensor, *, log_q: Any, pos_log_q: Any, **kw: Any) -> Tensor:
        return function(pos, neg, **hyper, **kw)
    return call


REGISTERED = [
    Case("sgns", lambda r: SGNSLoss(reduction=r), _ignoring_log_q(fn.sgns_loss), sgns(1.0)),
    Case("sgns-lam", lambda r: SGNSLoss(lam=0.5, reduction=r),
         _ignoring_log_q(fn.sgns_loss, lam=0.5), sgns(0.5)),
    Case("weighted", lambda r: WeightedContrastiveLoss(lam=0.5, reduction=r),
         _ignoring_log_q(fn.weighted_contrastive_loss, lam=0.5), weighted(0.5, logistic)),
    Case("weighted-squared", lambda r: WeightedContrastiveLoss(2.0, "squared", reduction=r),
         _ignoring_log_q(fn.weighted_contrastive_loss, lam=2.0, loss="squared"),
         weighted(2.0, squared)),
    Case("weighted-hinge", lambda r: WeightedContrastiveLoss(1.0, "hinge", 0.5, reduction=r),
         _ignoring_log_q(fn.weighted_contrastive_loss, loss="hinge", margin=0.5),
         weighted(1.0, lambda s, y: max(0.0, 0.5 - y * s))),
    Case("info-nce", lambda r: InfoNCELoss(0.5, reduction=r), _info_nce(0.5, False),
         info_nce(0.5, False)),
    Case("info-nce-log-q", lambda r: InfoNCELoss(0.5, correct_log_q=True, reduction=r),
         _info_nce(0.5, True), info_nce(0.5, True), "neg_score_shift"),
    Case("debiased", lambda r: DebiasedContrastiveLoss(reduction=r), _debiased(0.0, False),
         debiased(0.0, False)),
    Case("debiased-log-q", lambda r: DebiasedContrastiveLoss(correct_log_q=True, reduction=r),
         _debiased(0.0, True), debiased(0.0, True), "invariant"),
    Case("hard", lambda r: HardNegativeContrastiveLoss(reduction=r), _debiased(1.0, False),
         debiased(1.0, False)),
    Case("hard-log-q", lambda r: HardNegativeContrastiveLoss(correct_log_q=True, reduction=r),
         _debiased(1.0, True), debiased(1.0, True), "invariant"),
    Case("sampled-softmax", lambda r: SampledSoftmaxLoss(reduction=r), fn.sampled_softmax_loss,
         per_pair(sampled_softmax), "invariant"),
    Case("nce", lambda r: NCELoss(reduction=r), fn.nce_loss, per_pair(nce), "score_shift"),
]


def collected() -> set[type[NegativeSamplingLoss]]:
    """The concrete loss classes that ``nslightning.losses`` exports."""
    found = set()
    for name in losses.__all__:
        obj = getattr(losses, name)
        concrete = isinstance(obj, type) and not inspect.isabstract(obj)
        if concrete and issubclass(obj, NegativeSamplingLoss):
            found.add(obj)
    return found


def cls_of(case: Case) -> type[NegativeSamplingLoss]:
    return type(case.make("mean"))


def all_cases() -> list[Case]:
    covered = {cls_of(case) for case in REGISTERED}
    defaults = [Case(f"default-{cls.__name__}", lambda r, cls=cls: cls(reduction=r))
                for cls in sorted(collected() - covered, key=lambda cls: cls.__name__)]
    return REGISTERED + defaults


CASES = all_cases()
cases = pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])


def call(loss: NegativeSamplingLoss, x: Inputs) -> Tensor:
    return loss(x.pos, x.neg, **x.kwargs())


# ------------------------------------------------------------------------ the contract
def test_every_class_is_registered() -> None:
    classes = collected()
    assert classes, "no loss class collected from nslightning.losses.__all__"
    assert classes >= KNOWN
    unregistered = classes - {cls_of(case) for case in REGISTERED if case.functional}
    assert not unregistered, f"add a Case with the functional form of {unregistered} to REGISTERED"


@cases
def test_shapes_and_broadcasting(case: Case) -> None:
    loss = case.make("mean")
    x = make_inputs((B,))
    assert call(loss, x).shape == ()
    shared = replace(x, log_q=x.log_q[:1])  # candidates shared by every row: (1, K)
    expanded = replace(x, log_q=x.log_q[:1].expand(B, K))
    torch.testing.assert_close(call(loss, shared), call(loss, expanded), rtol=1e-14, atol=0)
    y = make_inputs((B, C), seed=1)
    broadcast = replace(y, neg_mask=y.neg_mask[:, :1], log_q=y.log_q[:, :1],
                        weights=y.weights[:, :1])  # (B, 1, K) against (B, C, K); (B, 1)
    full = replace(broadcast, neg_mask=broadcast.neg_mask.expand(B, C, K),
                   log_q=broadcast.log_q.expand(B, C, K), weights=broadcast.weights.expand(B, C))
    assert call(loss, broadcast).shape == ()
    torch.testing.assert_close(call(loss, broadcast), call(loss, full), rtol=1e-14, atol=0)
    with pytest.raises(ValueError, match="neg_scores"):
        loss(x.pos, x.neg[:2], **x.kwargs())


@cases
def test_sum_is_mean_times_the_total_weight(case: Case) -> None:
    x = make_inputs((B, C), seed=2)
    mean, total = call(case.make("mean"), x), call(case.make("sum"), x)
    torch.testing.assert_close(total, mean * x.weights.sum(), rtol=1e-12, atol=1e-12)
    unweighted = replace(x, weights=None)
    torch.testing.assert_close(call(case.make("sum"), unweighted),
                               call(case.make("mean"), unweighted) * B * C)
    for bad in ("none", "max"):
        with pytest.raises(ValueError, match="reduction must be 'mean' or 'sum'"):
            case.make(bad)


@cases
@pytest.mark.parametrize("garbage", [math.inf, -math.inf, math.nan])
def test_masked_negatives_reach_neither_value_nor_gradient(case: Case, garbage: float) -> None:
    x = make_inputs((B, C), seed=3)
    dropped = ~x.neg_mask
    values, grads = [], []
    for neg in (x.neg, x.neg.masked_fill(dropped, garbage)):
        neg = neg.clone().requires_grad_(True)
        value = call(case.make("mean"), replace(x, neg=neg))
        (grad,) = torch.autograd.grad(value, neg)
        values.append(value)
        grads.append(grad)
    assert torch.isfinite(values[1]) and torch.isfinite(grads[1]).all()
    assert torch.equal(values[0], values[1])
    assert torch.equal(grads[0], grads[1])
    assert (grads[1][dropped] == 0).all()


@cases
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_zero_weight_drops_a_pair_and_integer_weights_duplicate_rows(
    case: Case, reduction: str
) -> None:
    loss = case.make(reduction)
    x = make_inputs((B,), seed=4)
    zeroed = x.weights.clone()
    zeroed[2] = 0.0
    keep = torch.tensor([0, 1, 3])
    removed = Inputs(*(None if t is None else t[keep] for t in (
        x.pos, x.neg, x.neg_mask, x.log_q, x.pos_log_q, x.weights)))
    torch.testing.assert_close(call(loss, replace(x, weights=zeroed)), call(loss, removed),
                               rtol=1e-12, atol=1e-12)
    counts = torch.tensor([1, 2, 3, 1])
    duplicated = Inputs(*(None if t is None else t.repeat_interleave(counts, dim=0) for t in (
        x.pos, x.neg, x.neg_mask, x.log_q, x.pos_log_q, None)))
    torch.testing.assert_close(call(loss, replace(x, weights=counts.to(F64))),
                               call(loss, duplicated), rtol=1e-12, atol=1e-12)


@cases
def test_log_q_is_read_exactly_when_declared(case: Case) -> None:
    loss = case.make("mean")
    x = make_inputs((B, C), seed=5)
    other = replace(x, log_q=x.log_q - torch.rand(x.log_q.shape, dtype=F64),
                    pos_log_q=x.pos_log_q - 0.5)
    if not loss.uses_log_q:
        assert torch.equal(call(loss, x), call(loss, replace(x, log_q=None, pos_log_q=None)))
        assert torch.equal(call(loss, x), call(loss, other))
        return
    assert not torch.allclose(call(loss, x), call(loss, other))
    with pytest.raises(ValueError, match="log_q"):
        call(loss, replace(x, log_q=None))
    if loss.needs_fixed_distribution:
        with pytest.raises(ValueError, match="pos_log_q"):
            call(loss, replace(x, pos_log_q=None))
    c = 1.7
    shifted = call(loss, replace(x, log_q=x.log_q + c, pos_log_q=x.pos_log_q + c))
    if case.log_q_shift == "invariant":
        torch.testing.assert_close(shifted, call(loss, x), rtol=1e-12, atol=1e-12)
    elif case.log_q_shift == "score_shift":
        torch.testing.assert_close(shifted, call(loss, replace(x, pos=x.pos - c, neg=x.neg - c)))
    elif case.log_q_shift == "neg_score_shift":
        tau = float(getattr(loss, "temperature", 1.0))
        torch.testing.assert_close(shifted, call(loss, replace(x, neg=x.neg - c * tau)))
    else:
        pytest.fail(f"{case.name} reads log_q: declare what a shift of it does (log_q_shift)")


@cases
def test_a_shift_of_every_score_changes_the_loss_exactly_when_pointwise(case: Case) -> None:
    loss = case.make("mean")
    x = make_inputs((B, C), seed=9)
    shifted = call(loss, replace(x, pos=x.pos + 2.5, neg=x.neg + 2.5))
    if loss.pointwise:
        assert not torch.allclose(shifted, call(loss, x))
    elif getattr(loss, "min_score", None) is None:  # the debiased bound is a fixed score
        torch.testing.assert_close(shifted, call(loss, x), rtol=1e-10, atol=1e-12)


@cases
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_gradcheck(case: Case, reduction: str) -> None:
    loss = case.make(reduction)
    x = make_inputs((2, 2), seed=6)
    pos, neg = x.pos.clone().requires_grad_(True), x.neg.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p, n: loss(p, n, **x.kwargs()), (pos, neg))


@cases
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_extreme_scores_give_finite_values_and_gradients(case: Case, dtype: torch.dtype) -> None:
    x = make_inputs((B, C), seed=7, dtype=dtype)
    signs = torch.where(torch.rand(x.neg.shape, generator=torch.Generator().manual_seed(8))
                        > 0.5, 1.0, -1.0).to(dtype)
    pos = torch.where(torch.arange(B * C).reshape(B, C) % 2 == 0, 1e4, -1e4).to(dtype)
    neg = torch.where(x.neg_mask, 1e4 * signs, math.inf * signs)  # ±inf where masked
    pos.requires_grad_(True)
    neg.requires_grad_(True)
    for reduction in ("mean", "sum"):
        value = call(case.make(reduction), replace(x, pos=pos, neg=neg))
        grads = torch.autograd.grad(value, (pos, neg))
        assert torch.isfinite(value), value
        assert all(torch.isfinite(g).all() for g in grads)


@cases
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_equals_its_functional_form(case: Case, reduction: str) -> None:
    if case.functional is None:
        pytest.skip("no functional form registered (test_every_class_is_registered fails)")
    x = make_inputs((B, C), seed=9)
    loss = case.make(reduction)
    assert torch.equal(call(loss, x), case.functional(x.pos, x.neg, reduction=reduction,
                                                      **x.kwargs()))
    loss.reduce_total = lambda total: 2 * total
    assert torch.equal(call(loss, x), case.functional(
        x.pos, x.neg, reduction=reduction, reduce_total=loss.reduce_total, **x.kwargs()))


@cases
def test_reduce_total_divides_the_mean_and_leaves_the_sum(case: Case) -> None:
    x = make_inputs((B, C), seed=10)
    for reduction, factor in (("mean", 0.5), ("sum", 1.0)):
        loss = case.make(reduction)
        plain = call(loss, x)
        loss.reduce_total = lambda total: 2 * total
        torch.testing.assert_close(call(loss, x), factor * plain, rtol=1e-12, atol=1e-12)


@cases
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("shape", [(B,), (B, C)])
def test_matches_the_naive_reference(case: Case, reduction: str, shape: tuple[int, ...]) -> None:
    if case.reference is None:
        pytest.skip("no naive reference registered for this loss")
    x = make_inputs(shape, seed=11)
    expected = torch.tensor(case.reference(x, reduction), dtype=F64)
    torch.testing.assert_close(call(case.make(reduction), x), expected, rtol=1e-10, atol=1e-12)


@cases
def test_holds_no_parameters_and_shows_its_reduction(case: Case) -> None:
    loss = case.make("sum")
    assert list(loss.parameters()) == []
    assert "reduction='sum'" in repr(loss)
    assert loss.reduce_total is None


def test_declared_capabilities() -> None:
    assert SGNSLoss.fused_form == "sgns"
    assert {cls for cls in KNOWN if cls.fused_form is not None} == {SGNSLoss}
    assert {cls for cls in KNOWN if cls.needs_fixed_distribution} == {NCELoss}
    assert {cls for cls in KNOWN if cls.keeps_accidental_hits} == {NCELoss}
    assert {cls for cls in KNOWN if cls.pointwise} == {SGNSLoss, WeightedContrastiveLoss, NCELoss}
    assert SampledSoftmaxLoss.uses_log_q and NCELoss.uses_log_q
    assert not SGNSLoss().uses_log_q and not WeightedContrastiveLoss().uses_log_q
    for cls in (InfoNCELoss, DebiasedContrastiveLoss, HardNegativeContrastiveLoss):
        assert not cls().uses_log_q
        assert cls(correct_log_q=True).uses_log_q


def test_check_score_warns_only_for_the_cosine_bound_on_other_scores() -> None:
    with pytest.warns(UserWarning, match="min_score=-1.*score='dot'"):
        DebiasedContrastiveLoss().check_score("dot")
    with pytest.warns(UserWarning, match="HardNegativeContrastiveLoss"):
        HardNegativeContrastiveLoss().check_score("euclidean")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        DebiasedContrastiveLoss().check_score("cosine")
        DebiasedContrastiveLoss(min_score=-10.0).check_score("dot")
        for cls in KNOWN - {DebiasedContrastiveLoss, HardNegativeContrastiveLoss}:
            cls().check_score("dot")


def test_contrastive_loss_is_a_deprecated_alias() -> None:
    import nslightning.losses.contrastive as contrastive

    for module in (losses, contrastive):
        with pytest.warns(NSLightningDeprecationWarning, match="NegativeSamplingLoss"):
            assert module.ContrastiveLoss is NegativeSamplingLoss
    assert "ContrastiveLoss" not in losses.__all__
    with pytest.raises(AttributeError):
        _ = losses.NoSuchLoss
