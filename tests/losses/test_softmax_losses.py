"""info_nce_loss, debiased_contrastive_loss and their modules against independent references.

InfoNCE is checked against ``torch.nn.functional.cross_entropy`` and a naive loop; the debiased
loss against per-row references written straight from the papers' formulas (Chuang et al. 2020,
"Debiased Contrastive Learning"; Robinson et al. 2021, "Contrastive Learning with Hard Negative
Samples"), on cosine-like scores in [-1, 1].
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from nslightning.losses import (
    DebiasedContrastiveLoss,
    HardNegativeContrastiveLoss,
    InfoNCELoss,
    debiased_contrastive_loss,
    info_nce_loss,
)
from nslightning.losses.base import NegativeSamplingLoss

F64 = torch.float64


def random_inputs(shape=(2, 3), k=5, seed=0, dtype=F64):
    """Cosine-like scores in [-1, 1], a mask with varying counts, log q and pair weights."""
    g = torch.Generator().manual_seed(seed)
    pos = (torch.rand(shape, generator=g, dtype=dtype) * 2 - 1).clamp(-0.99, 0.99)
    neg = (torch.rand((*shape, k), generator=g, dtype=dtype) * 2 - 1).clamp(-0.99, 0.99)
    mask = torch.rand((*shape, k), generator=g) > 0.4
    mask.reshape(-1, k)[:, 0] = True
    q = torch.rand((*shape, k), generator=g, dtype=dtype) * 0.9 + 0.05
    weights = torch.rand(shape, generator=g, dtype=dtype) * 2 + 0.1
    return pos, neg, mask, q.log(), weights


def rows(pos, neg, mask=None, log_q=None):
    """Per-pair Python lists: (s+, [s_k], [kept_k], [q_k])."""
    n = pos.numel()
    p = pos.reshape(-1).tolist()
    ng = neg.reshape(n, -1).tolist()
    kept = (
        [[True] * len(r) for r in ng]
        if mask is None
        else mask.expand(neg.shape).reshape(n, -1).tolist()
    )
    q = (
        [[1.0] * len(r) for r in ng]
        if log_q is None
        else log_q.expand(neg.shape).exp().reshape(n, -1).tolist()
    )
    return list(zip(p, ng, kept, q, strict=True))


def reduce_naive(per_pair, shape, weights=None, reduction="mean"):
    per = torch.tensor(per_pair, dtype=F64).reshape(shape)
    if weights is not None:
        per = per * weights
    if reduction == "none":
        return per
    if reduction == "sum":
        return per.sum()
    total = per.numel() if weights is None else weights.expand(shape).sum()
    return per.sum() / total


# --------------------------------------------------------------------------- InfoNCE references


def cross_entropy_reference(pos, neg, t, log_q=None, pos_log_q=None, weights=None):
    """``F.cross_entropy`` on ``[s+/τ - log K q+, s_k/τ - log K q_k]`` with target 0, per pair
    (``K q``: the expected count of a candidate among ``K`` draws)."""
    log_k = math.log(neg.shape[-1])
    pos_logits = pos / t if pos_log_q is None else pos / t - pos_log_q - log_k
    neg_logits = neg / t if log_q is None else neg / t - log_q - log_k
    logits = torch.cat([pos_logits.unsqueeze(-1), neg_logits], -1).reshape(-1, neg.shape[-1] + 1)
    target = torch.zeros(logits.shape[0], dtype=torch.long)
    per = F.cross_entropy(logits, target, reduction="none").reshape(pos.shape)
    return per if weights is None else per * weights


def naive_info_nce_per_pair(pos, neg, t, mask=None):
    """-log softmax(logits)[0] with a Python loop that drops masked negatives."""
    out = []
    for s, ns, kept, _ in rows(pos, neg, mask):
        logits = [s / t] + [n / t for n, k in zip(ns, kept, strict=True) if k]
        out.append(math.log(sum(math.exp(x) for x in logits)) - s / t)
    return out


# --------------------------------------------------------------------------- InfoNCE


@pytest.mark.parametrize("t", [0.1, 0.5, 1.0, 2.0])
@pytest.mark.parametrize("shape", [(6,), (2, 3)])
def test_info_nce_equals_cross_entropy(t, shape):
    pos, neg, _, _, _ = random_inputs(shape, seed=int(t * 10))
    per = cross_entropy_reference(pos, neg, t)
    torch.testing.assert_close(info_nce_loss(pos, neg, temperature=t, reduction="none"), per)
    torch.testing.assert_close(info_nce_loss(pos, neg, temperature=t, reduction="sum"), per.sum())
    torch.testing.assert_close(info_nce_loss(pos, neg, temperature=t), per.mean())


def test_info_nce_hand_value():
    # Two logits equal: -log(1/2); default temperature 1.
    got = info_nce_loss(torch.tensor([0.3]), torch.tensor([[0.3]]))
    assert got.item() == pytest.approx(math.log(2), rel=1e-6)


@pytest.mark.parametrize("t", [0.2, 1.0])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_info_nce_mask_matches_a_naive_loop(t, reduction):
    pos, neg, mask, _, weights = random_inputs(seed=3)
    mask[0, 1] = False  # one row without kept negatives: loss 0
    got = info_nce_loss(
        pos, neg, temperature=t, neg_mask=mask, weights=weights, reduction=reduction
    )
    per = naive_info_nce_per_pair(pos, neg, t, mask)
    assert per[1] == pytest.approx(0.0, abs=1e-15)
    expected = reduce_naive(per, pos.shape, weights, reduction)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


def test_info_nce_broadcast_mask():
    pos, neg, _, _, _ = random_inputs(seed=4)
    mask = torch.tensor([True, False, True, False, True])
    got = info_nce_loss(pos, neg, neg_mask=mask, reduction="none")
    expected = torch.tensor(naive_info_nce_per_pair(pos, neg, 1.0, mask), dtype=F64)
    torch.testing.assert_close(got, expected.reshape(pos.shape), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("t", [0.3, 1.0])
@pytest.mark.parametrize("use_pos_log_q", [False, True], ids=["neg_only", "with_pos"])
def test_info_nce_log_q_correction_equals_cross_entropy(t, use_pos_log_q):
    pos, neg, _, log_q, _ = random_inputs(seed=5)
    g = torch.Generator().manual_seed(55)
    pos_log_q = torch.rand(pos.shape, generator=g, dtype=F64).log() if use_pos_log_q else None
    got = info_nce_loss(pos, neg, temperature=t, log_q=log_q, pos_log_q=pos_log_q, reduction="none")
    expected = cross_entropy_reference(pos, neg, t, log_q=log_q, pos_log_q=pos_log_q)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)
    plain = info_nce_loss(pos, neg, temperature=t, reduction="none")
    assert not torch.allclose(got, plain)  # the correction does change the loss


def test_info_nce_log_q_with_mask():
    pos, neg, mask, log_q, _ = random_inputs(seed=6)
    got = info_nce_loss(pos, neg, temperature=0.5, neg_mask=mask, log_q=log_q, reduction="none")
    per = []
    for s, ns, kept, qs in rows(pos, neg, mask, log_q):
        count = max(sum(kept), 1)  # K is the row's number of kept negatives
        logits = [s / 0.5] + [
            n / 0.5 - math.log(count * q) for n, k, q in zip(ns, kept, qs, strict=True) if k
        ]
        per.append(math.log(sum(math.exp(x) for x in logits)) - s / 0.5)
    torch.testing.assert_close(got, torch.tensor(per, dtype=F64).reshape(pos.shape))


def test_info_nce_log_q_correction_estimates_the_full_softmax():
    # V = 1000 equal scores: the full softmax loss is log V; K uniform draws must give it too
    vocab, k = 1000, 10
    pos, neg = torch.zeros(4, dtype=F64), torch.zeros(4, k, dtype=F64)
    log_q = torch.full((4, k), -math.log(vocab), dtype=F64)
    got = info_nce_loss(pos, neg, log_q=log_q)
    torch.testing.assert_close(got, torch.tensor(math.log(1 + vocab), dtype=F64))
    with pytest.raises(ValueError, match="pos_log_q needs log_q"):
        info_nce_loss(pos, neg, pos_log_q=torch.zeros(4, dtype=F64))


def test_info_nce_weights_give_a_weighted_mean():
    pos, neg, _, _, weights = random_inputs(seed=7)
    per = cross_entropy_reference(pos, neg, 0.5)
    got = info_nce_loss(pos, neg, temperature=0.5, weights=weights)
    torch.testing.assert_close(got, (per * weights).sum() / weights.sum())
    torch.testing.assert_close(
        info_nce_loss(pos, neg, temperature=0.5, weights=weights, reduction="none"),
        per * weights,
    )
    zero_one = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]], dtype=F64)
    got = info_nce_loss(pos, neg, temperature=0.5, weights=zero_one)
    torch.testing.assert_close(got, per[zero_one.bool()].mean())


def test_info_nce_all_masked_rows_are_zero_with_finite_gradients():
    pos, neg, mask, log_q, weights = random_inputs(seed=8)
    mask[1] = False
    pos.requires_grad_(True)
    neg.requires_grad_(True)
    per = info_nce_loss(pos, neg, neg_mask=mask, log_q=log_q, weights=weights, reduction="none")
    assert (per[1] == 0).all() and (per[0] > 0).all()
    per.sum().backward()
    assert torch.isfinite(pos.grad).all() and torch.isfinite(neg.grad).all()
    assert (pos.grad[1] == 0).all() and (neg.grad[1] == 0).all()
    assert (neg.grad[~mask] == 0).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_info_nce_extreme_scores(dtype):
    big = 1e4
    pos = torch.tensor([big, -big, big], dtype=dtype, requires_grad=True)
    neg = torch.tensor([[-big, -big], [big, -big], [big, big]], dtype=dtype, requires_grad=True)
    per = info_nce_loss(pos, neg, temperature=0.5, reduction="none")
    assert torch.isfinite(per).all()
    expected = torch.tensor([0.0, 2 * big / 0.5, math.log(3)], dtype=dtype)
    # log 3 emerges from logits near 2e4: float32 keeps it to about one ulp of 2e4 (0.002).
    atol = 1e-2 if dtype == torch.float32 else 1e-9
    torch.testing.assert_close(per.detach(), expected, rtol=1e-6, atol=atol)
    per.sum().backward()
    assert torch.isfinite(pos.grad).all() and torch.isfinite(neg.grad).all()


def test_info_nce_gradcheck():
    pos, neg, mask, log_q, weights = random_inputs((2, 2), 3, seed=9)
    mask[0, 0] = False  # a row without kept negatives

    def fn(p, n, w):
        return info_nce_loss(p, n, temperature=0.3, neg_mask=mask, log_q=log_q, weights=w)

    inputs = (pos.requires_grad_(True), neg.requires_grad_(True), weights.requires_grad_(True))
    assert torch.autograd.gradcheck(fn, inputs)


# --------------------------------------------------------------------------- debiased references


def naive_chuang(pos, neg, t, tau_plus, min_score=-1.0, mask=None):
    """Chuang et al. 2020, per row: -log(pos / (pos + Ng))."""
    out = []
    for s, ns, kept, _ in rows(pos, neg, mask):
        p = math.exp(s / t)
        negs = [math.exp(n / t) for n, k in zip(ns, kept, strict=True) if k]
        n_kept = len(negs)
        ng = max(
            (-tau_plus * n_kept * p + sum(negs)) / (1 - tau_plus), n_kept * math.exp(min_score / t)
        )
        out.append(-math.log(p / (p + ng)))
    return out


def naive_robinson(pos, neg, t, tau_plus, beta, min_score=-1.0, mask=None, log_q=None):
    """Robinson et al. 2021, per row; with ``log_q`` each importance is also divided by q_k."""
    out = []
    for s, ns, kept, qs in rows(pos, neg, mask, log_q):
        p = math.exp(s / t)
        kept_scores = [(n, q) for n, k, q in zip(ns, kept, qs, strict=True) if k]
        n_kept = len(kept_scores)
        negs = [math.exp(n / t) for n, _ in kept_scores]
        imp = [math.exp(beta * n / t) / q for n, q in kept_scores]
        if n_kept:
            reweight = sum(i * e for i, e in zip(imp, negs, strict=True)) / (sum(imp) / n_kept)
        else:
            reweight = 0.0
        ng = max(
            (-tau_plus * n_kept * p + reweight) / (1 - tau_plus), n_kept * math.exp(min_score / t)
        )
        out.append(-math.log(p / (p + ng)))
    return out


def test_references_agree_with_each_other_and_hand_values():
    """Guards the references: Robinson with β = 0 is Chuang; one pair by hand."""
    pos, neg, mask, _, _ = random_inputs(seed=10)
    a = naive_chuang(pos, neg, 0.5, 0.1, mask=mask)
    b = naive_robinson(pos, neg, 0.5, 0.1, 0.0, mask=mask)
    assert a == pytest.approx(b, rel=1e-12)
    # s+ = 0, one negative at 0, τ+ = 0: -log(1/2).
    one = naive_chuang(torch.zeros(1), torch.zeros(1, 1), 0.5, 0.0)
    assert one == pytest.approx([math.log(2)])


# --------------------------------------------------------------------------- debiased


@pytest.mark.parametrize("t", [0.1, 0.5, 1.0])
@pytest.mark.parametrize("tau_plus", [0.0, 0.1, 0.3])
@pytest.mark.parametrize("use_mask", [False, True], ids=["nomask", "mask"])
def test_debiased_matches_chuang(t, tau_plus, use_mask):
    pos, neg, mask, _, _ = random_inputs(seed=11 + int(t * 10))
    mask = mask if use_mask else None
    got = debiased_contrastive_loss(
        pos, neg, temperature=t, tau_plus=tau_plus, neg_mask=mask, reduction="none"
    )
    expected = torch.tensor(naive_chuang(pos, neg, t, tau_plus, mask=mask), dtype=F64)
    torch.testing.assert_close(got, expected.reshape(pos.shape), rtol=1e-10, atol=1e-12)


def test_debiased_default_hyperparameters_are_chuangs():
    pos, neg, _, _, _ = random_inputs(seed=12)
    got = debiased_contrastive_loss(pos, neg, reduction="none")
    expected = torch.tensor(naive_chuang(pos, neg, 0.5, 0.1), dtype=F64).reshape(pos.shape)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("min_score", [-1.0, -0.5])
def test_debiased_clamp_is_active_and_matches(min_score):
    """A high positive with low negatives and a large τ+ drives the estimate under the floor."""
    pos = torch.tensor([0.9, 0.2], dtype=F64)
    neg = torch.tensor([[-0.9, -0.8, -0.95], [0.1, 0.3, -0.2]], dtype=F64)
    t, tau_plus = 0.5, 0.5
    p0, n_kept = math.exp(0.9 / t), 3
    raw = (-tau_plus * n_kept * p0 + sum(math.exp(n / t) for n in neg[0].tolist())) / 0.5
    assert raw < n_kept * math.exp(min_score / t)  # the first row is clamped
    got = debiased_contrastive_loss(
        pos, neg, temperature=t, tau_plus=tau_plus, min_score=min_score, reduction="none"
    )
    expected = torch.tensor(naive_chuang(pos, neg, t, tau_plus, min_score), dtype=F64)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)
    # The clamped value: -log(p / (p + N e^{min/t})).
    clamped = math.log1p(n_kept * math.exp(min_score / t) / p0)
    assert got[0].item() == pytest.approx(clamped, rel=1e-12)


@pytest.mark.parametrize("beta", [0.5, 1.0, 2.0])
@pytest.mark.parametrize("tau_plus", [0.0, 0.1])
@pytest.mark.parametrize("use_mask", [False, True], ids=["nomask", "mask"])
def test_hard_negative_matches_robinson(beta, tau_plus, use_mask):
    pos, neg, mask, _, _ = random_inputs(seed=13 + int(beta * 2))
    mask = mask if use_mask else None
    got = debiased_contrastive_loss(
        pos, neg, temperature=0.5, tau_plus=tau_plus, beta=beta, neg_mask=mask, reduction="none"
    )
    expected = naive_robinson(pos, neg, 0.5, tau_plus, beta, mask=mask)
    torch.testing.assert_close(
        got, torch.tensor(expected, dtype=F64).reshape(pos.shape), rtol=1e-10, atol=1e-12
    )
    assert not torch.allclose(
        got,
        debiased_contrastive_loss(
            pos, neg, temperature=0.5, tau_plus=tau_plus, neg_mask=mask, reduction="none"
        ),
    )


@pytest.mark.parametrize("use_mask", [False, True], ids=["nomask", "mask"])
def test_debiased_without_bias_terms_is_info_nce(use_mask):
    pos, neg, mask, _, weights = random_inputs(seed=14)
    mask = mask if use_mask else None
    for t in (0.2, 0.5, 1.0):
        got = debiased_contrastive_loss(
            pos,
            neg,
            temperature=t,
            tau_plus=0.0,
            beta=0.0,
            min_score=-1e9,
            neg_mask=mask,
            weights=weights,
        )
        expected = info_nce_loss(pos, neg, temperature=t, neg_mask=mask, weights=weights)
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("tau_plus", [0.0, 0.1])
@pytest.mark.parametrize("use_mask", [False, True], ids=["nomask", "mask"])
def test_debiased_log_q_importance_weights(tau_plus, use_mask):
    """β = 0 with log q: Σ_k (neg_k / q_k) / Σ_k (1 / q_k) · N in place of Σ neg."""
    pos, neg, mask, log_q, _ = random_inputs(seed=15)
    mask = mask if use_mask else None
    t = 0.5
    got = debiased_contrastive_loss(
        pos, neg, temperature=t, tau_plus=tau_plus, neg_mask=mask, log_q=log_q, reduction="none"
    )
    expected = []
    for s, ns, kept, qs in rows(pos, neg, mask, log_q):
        p = math.exp(s / t)
        kq = [(math.exp(n / t), q) for n, k, q in zip(ns, kept, qs, strict=True) if k]
        n_kept = len(kq)
        mass = sum(e / q for e, q in kq) / sum(1 / q for _, q in kq) * n_kept
        ng = max((-tau_plus * n_kept * p + mass) / (1 - tau_plus), n_kept * math.exp(-1 / t))
        expected.append(-math.log(p / (p + ng)))
    torch.testing.assert_close(
        got, torch.tensor(expected, dtype=F64).reshape(pos.shape), rtol=1e-10, atol=1e-12
    )
    # Uniform q is no correction at all.
    uniform = torch.full_like(log_q, math.log(0.2))
    torch.testing.assert_close(
        debiased_contrastive_loss(
            pos, neg, temperature=t, tau_plus=tau_plus, neg_mask=mask, log_q=uniform
        ),
        debiased_contrastive_loss(pos, neg, temperature=t, tau_plus=tau_plus, neg_mask=mask),
    )


def test_hard_negative_with_log_q():
    pos, neg, mask, log_q, _ = random_inputs(seed=16)
    got = debiased_contrastive_loss(
        pos,
        neg,
        temperature=0.5,
        tau_plus=0.1,
        beta=1.0,
        neg_mask=mask,
        log_q=log_q,
        reduction="none",
    )
    expected = naive_robinson(pos, neg, 0.5, 0.1, 1.0, mask=mask, log_q=log_q)
    torch.testing.assert_close(
        got, torch.tensor(expected, dtype=F64).reshape(pos.shape), rtol=1e-10, atol=1e-12
    )


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_debiased_weights_and_reductions(reduction):
    pos, neg, mask, _, weights = random_inputs(seed=17)
    got = debiased_contrastive_loss(
        pos, neg, tau_plus=0.1, beta=1.0, neg_mask=mask, weights=weights, reduction=reduction
    )
    per = naive_robinson(pos, neg, 0.5, 0.1, 1.0, mask=mask)
    expected = reduce_naive(per, pos.shape, weights, reduction)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("beta", [0.0, 1.0])
@pytest.mark.parametrize("use_log_q", [False, True], ids=["noq", "q"])
def test_debiased_all_masked_rows_are_zero_with_finite_gradients(beta, use_log_q):
    pos, neg, mask, log_q, weights = random_inputs(seed=18)
    mask[0, 2] = False
    pos.requires_grad_(True)
    neg.requires_grad_(True)
    per = debiased_contrastive_loss(
        pos,
        neg,
        tau_plus=0.1,
        beta=beta,
        neg_mask=mask,
        log_q=log_q if use_log_q else None,
        weights=weights,
        reduction="none",
    )
    assert per[0, 2].item() == 0.0
    assert torch.isfinite(per).all()
    per.sum().backward()
    assert torch.isfinite(pos.grad).all() and torch.isfinite(neg.grad).all()
    assert pos.grad[0, 2].item() == 0.0 and (neg.grad[0, 2] == 0).all()
    assert (neg.grad[~mask] == 0).all()
    # Every row masked: a zero loss, not NaN.
    everything = torch.zeros_like(mask)
    mean = debiased_contrastive_loss(pos, neg, beta=beta, neg_mask=everything)
    assert mean.item() == 0.0


@pytest.mark.parametrize("beta", [0.0, 1.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_debiased_extreme_scores(beta, dtype):
    big = 1e4
    pos = torch.tensor([big, -big, big], dtype=dtype, requires_grad=True)
    neg = torch.tensor([[-big, -big], [big, big], [big, -big]], dtype=dtype, requires_grad=True)
    per = debiased_contrastive_loss(
        pos, neg, temperature=0.5, tau_plus=0.1, beta=beta, reduction="none"
    )
    assert torch.isfinite(per).all()
    assert per[0].item() == pytest.approx(0.0, abs=1e-6)
    # Ng ≈ (2 e^{2e4} - 0.2 e^{-2e4}) / 0.9: loss ≈ 4e4 + log(2 / 0.9)
    assert per[1].item() == pytest.approx(2 * big / 0.5 + math.log(2 / 0.9), rel=1e-6)
    per.sum().backward()
    assert torch.isfinite(pos.grad).all() and torch.isfinite(neg.grad).all()


@pytest.mark.parametrize("beta", [0.0, 1.5])
@pytest.mark.parametrize("tau_plus", [0.0, 0.2])
def test_debiased_gradcheck(beta, tau_plus):
    pos, neg, mask, log_q, weights = random_inputs((2, 2), 3, seed=19)
    mask[1, 0] = False  # a row without kept negatives

    def fn(p, n, w):
        return debiased_contrastive_loss(
            p,
            n,
            temperature=0.5,
            tau_plus=tau_plus,
            beta=beta,
            neg_mask=mask,
            log_q=log_q,
            weights=w,
        )

    inputs = (pos.requires_grad_(True), neg.requires_grad_(True), weights.requires_grad_(True))
    assert torch.autograd.gradcheck(fn, inputs)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("t", [0.0, -0.5, float("nan"), float("inf")])
def test_bad_temperature_raises(t):
    pos, neg, _, _, _ = random_inputs(seed=20)
    with pytest.raises(ValueError, match="temperature"):
        info_nce_loss(pos, neg, temperature=t)
    with pytest.raises(ValueError, match="temperature"):
        debiased_contrastive_loss(pos, neg, temperature=t)


@pytest.mark.parametrize("tau_plus", [-0.1, 1.0, 1.5])
def test_bad_tau_plus_raises(tau_plus):
    pos, neg, _, _, _ = random_inputs(seed=21)
    with pytest.raises(ValueError, match="tau_plus"):
        debiased_contrastive_loss(pos, neg, tau_plus=tau_plus)


@pytest.mark.parametrize("beta", [-0.1, float("nan")])
def test_bad_beta_raises(beta):
    pos, neg, _, _, _ = random_inputs(seed=22)
    with pytest.raises(ValueError, match="beta"):
        debiased_contrastive_loss(pos, neg, beta=beta)


@pytest.mark.parametrize("fn", [info_nce_loss, debiased_contrastive_loss])
def test_shape_mismatches_name_the_argument(fn):
    pos, neg, _, _, _ = random_inputs((2, 3), 5, seed=23)
    with pytest.raises(ValueError, match="neg_scores"):
        fn(pos, neg[0])
    with pytest.raises(ValueError, match="neg_mask"):
        fn(pos, neg, neg_mask=torch.ones(2, 3, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="log_q"):
        fn(pos, neg, log_q=torch.zeros(3, 3, 5, dtype=F64))
    with pytest.raises(ValueError, match="weights"):
        fn(pos, neg, weights=torch.ones(2, 5, dtype=F64))


# --------------------------------------------------------------------------- modules


def test_info_nce_module_equals_the_function():
    pos, neg, mask, log_q, weights = random_inputs(seed=24)
    plain = InfoNCELoss(temperature=0.3)
    assert isinstance(plain, NegativeSamplingLoss)
    assert list(plain.parameters()) == []
    expected = info_nce_loss(pos, neg, temperature=0.3, neg_mask=mask, weights=weights)
    torch.testing.assert_close(plain(pos, neg, neg_mask=mask, weights=weights), expected)
    # Without correct_log_q the sampler's log_q is ignored.
    torch.testing.assert_close(
        plain(pos, neg, neg_mask=mask, log_q=log_q, weights=weights), expected
    )
    corrected = InfoNCELoss(temperature=0.3, correct_log_q=True)
    torch.testing.assert_close(
        corrected(pos, neg, neg_mask=mask, log_q=log_q, weights=weights),
        info_nce_loss(pos, neg, temperature=0.3, neg_mask=mask, log_q=log_q, weights=weights),
    )
    expected = cross_entropy_reference(pos, neg, 1.0).mean()
    torch.testing.assert_close(InfoNCELoss()(pos, neg), expected)
    # The base class's defaults: nothing scheduled, nothing logged.
    plain.set_step(10)
    assert plain.logged_values() == {}


@pytest.mark.parametrize(
    "module",
    [
        InfoNCELoss(correct_log_q=True),
        DebiasedContrastiveLoss(correct_log_q=True),
        HardNegativeContrastiveLoss(correct_log_q=True),
    ],
    ids=["info_nce", "debiased", "hard_negative"],
)
def test_correct_log_q_without_log_q_raises(module):
    pos, neg, mask, _, _ = random_inputs(seed=25)
    with pytest.raises(ValueError, match="correct_log_q"):
        module(pos, neg, neg_mask=mask)


def test_debiased_module_equals_the_function():
    pos, neg, mask, log_q, weights = random_inputs(seed=26)
    module = DebiasedContrastiveLoss(temperature=0.4, tau_plus=0.2, min_score=-0.8)
    assert isinstance(module, NegativeSamplingLoss)
    expected = debiased_contrastive_loss(
        pos, neg, temperature=0.4, tau_plus=0.2, min_score=-0.8, neg_mask=mask, weights=weights
    )
    torch.testing.assert_close(module(pos, neg, neg_mask=mask, weights=weights), expected)
    torch.testing.assert_close(  # log_q ignored
        module(pos, neg, neg_mask=mask, log_q=log_q, weights=weights), expected
    )
    corrected = DebiasedContrastiveLoss(
        temperature=0.4, tau_plus=0.2, min_score=-0.8, correct_log_q=True
    )
    torch.testing.assert_close(
        corrected(pos, neg, neg_mask=mask, log_q=log_q, weights=weights),
        debiased_contrastive_loss(
            pos,
            neg,
            temperature=0.4,
            tau_plus=0.2,
            min_score=-0.8,
            neg_mask=mask,
            log_q=log_q,
            weights=weights,
        ),
    )
    default = DebiasedContrastiveLoss()
    torch.testing.assert_close(
        default(pos, neg),
        reduce_naive(naive_chuang(pos, neg, 0.5, 0.1), pos.shape),
        rtol=1e-10,
        atol=1e-12,
    )
    assert module.logged_values() == {}


def test_hard_negative_module():
    pos, neg, mask, log_q, weights = random_inputs(seed=27)
    zero = HardNegativeContrastiveLoss(temperature=0.4, tau_plus=0.1, beta=0.0)
    debiased = DebiasedContrastiveLoss(temperature=0.4, tau_plus=0.1)
    torch.testing.assert_close(
        zero(pos, neg, neg_mask=mask, weights=weights),
        debiased(pos, neg, neg_mask=mask, weights=weights),
    )
    module = HardNegativeContrastiveLoss(temperature=0.4, tau_plus=0.1, beta=1.0)
    assert module.beta == 1.0
    got = module(pos, neg, neg_mask=mask, weights=weights)
    expected = reduce_naive(naive_robinson(pos, neg, 0.4, 0.1, 1.0, mask=mask), pos.shape, weights)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)
    assert not torch.allclose(got, debiased(pos, neg, neg_mask=mask, weights=weights))
    corrected = HardNegativeContrastiveLoss(
        temperature=0.4, tau_plus=0.1, beta=1.0, correct_log_q=True
    )
    expected = reduce_naive(
        naive_robinson(pos, neg, 0.4, 0.1, 1.0, mask=mask, log_q=log_q), pos.shape, weights
    )
    torch.testing.assert_close(
        corrected(pos, neg, neg_mask=mask, log_q=log_q, weights=weights), expected,
        rtol=1e-10, atol=1e-12,
    )


@pytest.mark.parametrize(
    "build",
    [
        lambda: InfoNCELoss(temperature=0.0),
        lambda: DebiasedContrastiveLoss(temperature=-1.0),
        lambda: DebiasedContrastiveLoss(tau_plus=1.0),
        lambda: HardNegativeContrastiveLoss(tau_plus=-0.1),
        lambda: HardNegativeContrastiveLoss(beta=-1.0),
    ],
    ids=["info_nce_t", "debiased_t", "debiased_tau_plus", "hard_tau_plus", "hard_beta"],
)
def test_modules_validate_at_construction(build):
    with pytest.raises(ValueError):
        build()
