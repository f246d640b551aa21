"""Property-based tests of the losses: finite values and gradients, and the documented formulas.

Hypothesis draws batches of scores that include extreme magnitudes (±1e4, ±80, ±700, tiny),
masks with fully masked rows, very negative ``log_q``, zero pair weights and each loss's
hyperparameters. Every loss of :mod:`nslightning.losses` must then

* return a finite value with finite gradients, in float32 and float64;
* equal a plain float64 reference written here from its docstring's formula (pure Python
  floats, row by row), tightly in float64 and within float32 rounding in float32;
* give a fully masked row what its docstring says: SGNS and NCE drop the negatives' terms,
  InfoNCE / sampled softmax / the debiased losses give the row a loss of 0, and the weighted
  contrastive loss's negative side contributes 0 when nothing is kept;
* equal its ``nn.Module`` wrapper.

The examples are derandomized and no hypothesis database is written (see
``tests/samplers/test_properties.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nslightning.losses import (
    DebiasedContrastiveLoss,
    HardNegativeContrastiveLoss,
    InfoNCELoss,
    SGNSLoss,
    WeightedContrastiveLoss,
    debiased_contrastive_loss,
    info_nce_loss,
    nce_loss,
    sampled_softmax_loss,
    sgns_loss,
    weighted_contrastive_loss,
)

MAX_EXAMPLES = 40
PROPERTIES = settings(max_examples=MAX_EXAMPLES)  # the rest: the profile in conftest.py
EXTREME_SCORES = [1e4, -1e4, 700.0, -700.0, 88.0, -88.0, 80.0, -80.0, 1e-30, -1e-30, 1e-7, 0.0]
# Values exactly representable in float32, so that both precisions see the same numbers. A
# batch is either moderate (where every term of a formula shows in the loss) or wide (extreme
# magnitudes, where the question is whether anything overflows).
SCORES = {
    "moderate": st.floats(-4, 4, width=32),
    "wide": st.floats(-50, 50, width=32) | st.sampled_from(EXTREME_SCORES)
    | st.floats(-1e4, 1e4, width=32),
}
LOG_PROBS = {
    "moderate": st.floats(-8, 0, width=32),
    "wide": st.floats(-60, 0, width=32) | st.sampled_from([-1e4, -1e3, -80.0, -1e-7, 0.0]),
}
pair_weights = st.floats(0, 5, width=32) | st.just(0.0)


# ------------------------------------------------------------------------------ inputs
@dataclass
class Batch:
    """A batch of ``R`` rows (shape ``shape``) with ``K`` negatives, as Python floats."""

    shape: tuple[int, ...]
    pos: list[float]
    neg: list[list[float]]
    mask: list[list[bool]] | None
    log_q: list[list[float]] | None
    pos_log_q: list[float] | None
    weights: list[float] | None

    @property
    def k(self) -> int:
        return len(self.neg[0])

    def kept(self, row: int) -> list[int]:
        """The columns of ``row`` that count as negatives."""
        if self.mask is None:
            return list(range(self.k))
        return [j for j, keep in enumerate(self.mask[row]) if keep]

    def weight(self, row: int) -> float:
        return 1.0 if self.weights is None else self.weights[row]

    def tensors(self, dtype: torch.dtype) -> dict[str, torch.Tensor | None]:
        """The batch as tensors; scores and log q require grad."""

        def leaf(values: Sequence, shape: tuple[int, ...]) -> torch.Tensor:
            return torch.tensor(values, dtype=dtype).reshape(shape).requires_grad_(True)

        shape, neg_shape = self.shape, (*self.shape, self.k)
        return {
            "pos": leaf(self.pos, shape),
            "neg": leaf(self.neg, neg_shape),
            "mask": None if self.mask is None else torch.tensor(self.mask).reshape(neg_shape),
            "log_q": None if self.log_q is None else leaf(self.log_q, neg_shape),
            "pos_log_q": None if self.pos_log_q is None else leaf(self.pos_log_q, shape),
            "weights": None
            if self.weights is None
            else torch.tensor(self.weights, dtype=dtype).reshape(shape),
        }

    def magnitude(self) -> float:
        values = [abs(v) for v in self.pos] + [abs(v) for row in self.neg for v in row]
        if self.log_q is not None:
            values += [abs(v) for row in self.log_q for v in row]
        if self.pos_log_q is not None:
            values += [abs(v) for v in self.pos_log_q]
        return max(values)


@st.composite
def batches(
    draw: st.DrawFn, log_q: bool | None = None, pos_log_q: bool | None = None,
    weights: bool | None = None,
) -> Batch:
    """Rows with per-row mask modes (all kept, all masked, mixed); ``None`` options are drawn."""
    if draw(st.booleans()):
        shape: tuple[int, ...] = (draw(st.integers(1, 5)),)
    else:
        shape = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    rows, k = math.prod(shape), draw(st.integers(1, 5))
    regime = draw(st.sampled_from(["moderate", "wide"]))
    scores, log_probs = SCORES[regime], LOG_PROBS[regime]
    pos = draw(st.lists(scores, min_size=rows, max_size=rows))
    neg = [draw(st.lists(scores, min_size=k, max_size=k)) for _ in range(rows)]
    mask = None
    if draw(st.sampled_from([False, True, True])):  # usually a mask: what it drops matters
        modes = draw(st.lists(st.sampled_from(["kept", "masked", "mixed", "mixed"]),
                              min_size=rows, max_size=rows))
        mask = [
            [mode == "kept"] * k if mode != "mixed"
            else draw(st.lists(st.booleans(), min_size=k, max_size=k))
            for mode in modes
        ]
    use_log_q = draw(st.booleans()) if log_q is None else log_q
    lq = [draw(st.lists(log_probs, min_size=k, max_size=k)) for _ in range(rows)] if use_log_q \
        else None
    use_pos = (use_log_q and draw(st.booleans())) if pos_log_q is None else pos_log_q
    plq = draw(st.lists(log_probs, min_size=rows, max_size=rows)) if use_pos else None
    use_weights = draw(st.booleans()) if weights is None else weights
    w = draw(st.lists(pair_weights, min_size=rows, max_size=rows)) if use_weights else None
    return Batch(shape, pos, neg, mask, lq, plq, w)


# ------------------------------------------------------------------------------ float64 maths
def softplus(x: float) -> float:
    """``log(1 + e^x)`` for any finite ``x``."""
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


def logsumexp(values: Sequence[float]) -> float:
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


def logaddexp(a: float, b: float) -> float:
    if b == -math.inf:
        return a
    return logsumexp([a, b])


def reduce(per_pair: list[float], batch: Batch, reduction: str) -> float | list[float]:
    """``_reduce``'s documented reductions: weighted sum, or weighted sum / total weight."""
    weighted = [p * batch.weight(r) for r, p in enumerate(per_pair)]
    if reduction == "none":
        return weighted
    if reduction == "sum":
        return sum(weighted)
    total = sum(batch.weight(r) for r in range(len(per_pair)))
    return sum(weighted) / max(total, 1e-12)


# ------------------------------------------------------------------------------ checking
Loss = Callable[[dict[str, torch.Tensor | None]], torch.Tensor]


def check(
    loss: Loss, reference: float | list[float], batch: Batch, scale: float = 1.0,
) -> None:
    """``loss`` in float64 and float32: finite values and gradients, equal to ``reference``.

    ``scale`` multiplies the inputs' magnitude in the float32 tolerance (``1/τ`` for losses
    that divide by a temperature).
    """
    expected = torch.tensor(reference, dtype=torch.float64)
    for dtype in (torch.float64, torch.float32):
        inputs = batch.tensors(dtype)
        value = loss(inputs)
        assert value.dtype == dtype
        assert torch.isfinite(value).all(), f"non-finite loss {value} in {dtype}"
        value.sum().backward()
        for name in ("pos", "neg", "log_q", "pos_log_q"):
            tensor = inputs[name]
            if tensor is not None and tensor.grad is not None:
                assert torch.isfinite(tensor.grad).all(), f"non-finite d loss / d {name}"
        if dtype == torch.float64:
            rtol, atol = 1e-9, 1e-9
        else:
            # float32 rounding of the logits, summed over a row's K + 1 terms.
            rtol, atol = 1e-4, 1e-6 * (batch.k + 2) * (1 + scale * batch.magnitude()) + 1e-5
        torch.testing.assert_close(
            value.detach().double(), expected.reshape(value.shape), rtol=rtol, atol=atol
        )


reductions = st.sampled_from(["mean", "sum", "none"])


# ------------------------------------------------------------------------------ SGNS
@PROPERTIES
@given(batch=batches(log_q=False), lam=st.sampled_from([0.0, 0.5, 1.0, 3.0]), reduction=reductions)
def test_sgns(batch: Batch, lam: float, reduction: str) -> None:
    # loss = -log σ(s) - λ Σ_k log σ(-n_k), masked negatives dropped.
    per_pair = [
        softplus(-batch.pos[r]) + lam * sum(softplus(batch.neg[r][j]) for j in batch.kept(r))
        for r in range(len(batch.pos))
    ]

    def loss(t: dict) -> torch.Tensor:
        value = sgns_loss(t["pos"], t["neg"], neg_mask=t["mask"], weights=t["weights"],
                          reduction=reduction, lam=lam)  # type: ignore[arg-type]
        if reduction != "none":
            module = SGNSLoss(lam=lam, reduction=reduction)  # type: ignore[arg-type]
            assert torch.equal(
                module(t["pos"], t["neg"], neg_mask=t["mask"], weights=t["weights"]), value
            )
        return value

    check(loss, reduce(per_pair, batch, reduction), batch)


# ------------------------------------------------------------------------------ weighted
def ell(s: float, y: float, kind: str, margin: float) -> float:
    if kind == "logistic":
        return softplus(-y * s)
    if kind == "hinge":
        return max(0.0, margin - y * s)
    return (1.0 - y * s) ** 2


def weighted_reference(batch: Batch, lam: float, kind: str, margin: float) -> float:
    """``(1/|S+|) Σ ℓ(s_i, +1) + λ (1/|S-|) Σ ℓ(s_j, -1)``, pair weights on both sides, an empty
    side contributing 0."""
    rows = range(len(batch.pos))
    positive = sum(batch.weight(r) * ell(batch.pos[r], 1.0, kind, margin) for r in rows)
    positive /= max(sum(batch.weight(r) for r in rows), 1e-12)
    if lam == 0:
        return positive
    kept = [(r, j) for r in rows for j in batch.kept(r)]
    negative = sum(batch.weight(r) * ell(batch.neg[r][j], -1.0, kind, margin) for r, j in kept)
    total = sum(batch.weight(r) for r, _ in kept)
    return positive + lam * negative / max(total, 1e-12)


@PROPERTIES
@given(
    batch=batches(log_q=False),
    lam=st.sampled_from([0.0, 0.25, 1.0, 4.0]) | st.floats(0, 10),
    kind=st.sampled_from(["logistic", "hinge", "squared"]),
    margin=st.sampled_from([0.0, 0.5, 1.0, 2.0]),
)
def test_weighted_contrastive(batch: Batch, lam: float, kind: str, margin: float) -> None:
    def loss(t: dict) -> torch.Tensor:
        value = weighted_contrastive_loss(
            t["pos"], t["neg"], lam=lam, loss=kind, margin=margin,  # type: ignore[arg-type]
            neg_mask=t["mask"], weights=t["weights"],
        )
        module = WeightedContrastiveLoss(lam=lam, loss=kind, margin=margin)  # type: ignore[arg-type]
        assert torch.equal(
            module(t["pos"], t["neg"], neg_mask=t["mask"], weights=t["weights"]), value
        )
        return value

    check(loss, weighted_reference(batch, lam, kind, margin), batch)


@PROPERTIES
@given(
    batch=batches(log_q=False),
    lam=st.sampled_from([0.5, 1.0]),
    kind=st.sampled_from(["logistic", "hinge", "squared"]),
    garbage=st.sampled_from([math.inf, -math.inf, math.nan]),
)
def test_weighted_contrastive_ignores_what_dropped_slots_hold(
    batch: Batch, lam: float, kind: str, garbage: float
) -> None:
    # Documented: a dropped slot's score, even inf or NaN, must not reach the loss; nor, then,
    # its gradient (a NaN there would poison every parameter the score depends on).
    if batch.mask is None:
        batch.mask = [[j % 2 == 0 for j in range(batch.k)] for _ in batch.pos]
    dropped = [
        [not keep or batch.weight(r) == 0 for keep in row] for r, row in enumerate(batch.mask)
    ]
    expected = weighted_reference(batch, lam, kind, 1.0)
    batch.neg = [
        [garbage if drop else value for value, drop in zip(row, drops, strict=True)]
        for row, drops in zip(batch.neg, dropped, strict=True)
    ]
    t = batch.tensors(torch.float64)
    value = weighted_contrastive_loss(
        t["pos"], t["neg"], lam=lam, loss=kind, neg_mask=t["mask"],  # type: ignore[arg-type]
        weights=t["weights"],
    )
    assert value.item() == pytest.approx(expected, rel=1e-9, abs=1e-9)
    value.backward()
    assert t["neg"] is not None and t["neg"].grad is not None
    assert torch.isfinite(t["neg"].grad).all()
    assert (t["neg"].grad[torch.tensor(dropped).reshape(t["neg"].shape)] == 0).all()


# ------------------------------------------------------------------------------ InfoNCE
def info_nce_reference(batch: Batch, temperature: float) -> list[float]:
    """Softmax of ``[s+/τ - log(K' q+), s_k/τ - log(K' q_k)]`` over the ``K'`` kept negatives
    (no correction without ``log_q``); a row without kept negatives has loss 0."""
    per_pair = []
    for r, s in enumerate(batch.pos):
        kept = batch.kept(r)
        log_count = math.log(max(len(kept), 1))
        z_pos = s / temperature
        logits = [batch.neg[r][j] / temperature for j in kept]
        if batch.log_q is not None:
            logits = [z - (batch.log_q[r][j] + log_count) for z, j in zip(logits, kept,
                                                                          strict=True)]
            if batch.pos_log_q is not None:
                z_pos -= batch.pos_log_q[r] + log_count
        per_pair.append(logsumexp([z_pos, *logits]) - z_pos)
    return per_pair


temperatures = st.sampled_from([0.05, 0.1, 0.5, 1.0, 2.0])


@PROPERTIES
@given(batch=batches(), temperature=temperatures, reduction=reductions)
def test_info_nce(batch: Batch, temperature: float, reduction: str) -> None:
    def loss(t: dict) -> torch.Tensor:
        value = info_nce_loss(
            t["pos"], t["neg"], temperature=temperature, neg_mask=t["mask"], log_q=t["log_q"],
            pos_log_q=t["pos_log_q"], weights=t["weights"],
            reduction=reduction,  # type: ignore[arg-type]
        )
        if t["pos_log_q"] is None and reduction == "mean":
            module = InfoNCELoss(temperature, correct_log_q=t["log_q"] is not None)
            assert torch.equal(module(t["pos"], t["neg"], neg_mask=t["mask"], log_q=t["log_q"],
                                      weights=t["weights"]), value)
        return value

    reference = reduce(info_nce_reference(batch, temperature), batch, reduction)
    check(loss, reference, batch, scale=1 / temperature)


# ------------------------------------------------------------------------------ debiased / hard
def debiased_reference(
    batch: Batch, temperature: float, tau_plus: float, beta: float, min_score: float
) -> list[float]:
    """Chuang et al. / Robinson et al. as documented::

        w = softmax(β b_k - log q_k) over kept k,   M = Σ_k w_k e^{b_k}
        g = max((M - τ+ e^a) / (1 - τ+), e^{min_score/τ}),   loss = -log(e^a / (e^a + N g))

    in log space; a row without kept negatives has loss 0."""
    per_pair = []
    for r, s in enumerate(batch.pos):
        kept = batch.kept(r)
        if not kept:
            per_pair.append(0.0)
            continue
        a = s / temperature
        b = [batch.neg[r][j] / temperature for j in kept]
        tilt = [beta * bk for bk in b]
        if batch.log_q is not None:
            tilt = [t - batch.log_q[r][j] for t, j in zip(tilt, kept, strict=True)]
        log_mass = logsumexp([t + bk for t, bk in zip(tilt, b, strict=True)]) - logsumexp(tilt)
        top = max(log_mass, a)
        spread = (math.exp(log_mass - top) - tau_plus * math.exp(a - top)) / (1 - tau_plus)
        log_g = max(top + math.log(spread) if spread > 0 else -math.inf, min_score / temperature)
        per_pair.append(logaddexp(a, math.log(len(kept)) + log_g) - a)
    return per_pair


@PROPERTIES
@given(
    batch=batches(pos_log_q=False),
    temperature=temperatures,
    tau_plus=st.sampled_from([0.0, 0.1, 0.5, 0.9]),
    beta=st.sampled_from([0.0, 0.5, 1.0, 2.0]),
    min_score=st.sampled_from([-1.0, 0.0, -100.0]),
    reduction=reductions,
)
def test_debiased_and_hard_negative(
    batch: Batch, temperature: float, tau_plus: float, beta: float, min_score: float,
    reduction: str,
) -> None:
    def loss(t: dict) -> torch.Tensor:
        value = debiased_contrastive_loss(
            t["pos"], t["neg"], temperature=temperature, tau_plus=tau_plus, beta=beta,
            min_score=min_score, neg_mask=t["mask"], log_q=t["log_q"], weights=t["weights"],
            reduction=reduction,  # type: ignore[arg-type]
        )
        if reduction == "mean":
            correct = t["log_q"] is not None
            module = (
                DebiasedContrastiveLoss(temperature, tau_plus, min_score, correct)
                if beta == 0
                else HardNegativeContrastiveLoss(temperature, tau_plus, beta, min_score, correct)
            )
            assert torch.equal(module(t["pos"], t["neg"], neg_mask=t["mask"], log_q=t["log_q"],
                                      weights=t["weights"]), value)
        return value

    per_pair = debiased_reference(batch, temperature, tau_plus, beta, min_score)
    check(loss, reduce(per_pair, batch, reduction), batch, scale=(1 + beta) / temperature)


# ------------------------------------------------------------------------------ sampled output
@PROPERTIES
@given(batch=batches(log_q=True, weights=False), reduction=reductions)
def test_sampled_softmax(batch: Batch, reduction: str) -> None:
    # z_t = s_t - log(K q_t) (uncorrected without it), z_k = s_k - log(K q_k) over kept k, with
    # K = every draw, masked or not.
    assert batch.log_q is not None
    log_k = math.log(batch.k)
    per_pair = []
    for r, s in enumerate(batch.pos):
        z_t = s if batch.pos_log_q is None else s - (batch.pos_log_q[r] + log_k)
        logits = [batch.neg[r][j] - (batch.log_q[r][j] + log_k) for j in batch.kept(r)]
        per_pair.append(logsumexp([z_t, *logits]) - z_t)

    def loss(t: dict) -> torch.Tensor:
        assert t["log_q"] is not None
        return sampled_softmax_loss(
            t["pos"], t["neg"], log_q=t["log_q"], pos_log_q=t["pos_log_q"], neg_mask=t["mask"],
            reduction=reduction,  # type: ignore[arg-type]
        )

    check(loss, reduce(per_pair, batch, reduction), batch)


@PROPERTIES
@given(batch=batches(log_q=True, pos_log_q=True, weights=False), reduction=reductions)
def test_nce(batch: Batch, reduction: str) -> None:
    # -log σ(s_t - log(K q_t)) - Σ_k log σ(-(s_k - log(K q_k))) over kept k.
    assert batch.log_q is not None and batch.pos_log_q is not None
    log_k = math.log(batch.k)
    per_pair = [
        softplus(-(s - (batch.pos_log_q[r] + log_k)))
        + sum(softplus(batch.neg[r][j] - (batch.log_q[r][j] + log_k)) for j in batch.kept(r))
        for r, s in enumerate(batch.pos)
    ]

    def loss(t: dict) -> torch.Tensor:
        assert t["log_q"] is not None and t["pos_log_q"] is not None
        return nce_loss(
            t["pos"], t["neg"], log_q=t["log_q"], pos_log_q=t["pos_log_q"], neg_mask=t["mask"],
            reduction=reduction,  # type: ignore[arg-type]
        )

    check(loss, reduce(per_pair, batch, reduction), batch)
