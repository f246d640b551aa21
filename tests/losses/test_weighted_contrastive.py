"""weighted_contrastive_loss and WeightedContrastiveLoss against a naive, loop-by-loop reference.

The reference follows the formula of the source documents literally::

    L = (1/|S+|) Σ_{i∈S+} ℓ(s_i, +1) + λ (1/|S-|) Σ_{j∈S-} ℓ(s_j, -1)

with weights: pair ``i`` counts ``w_i`` in ``S+`` and each of its kept negatives ``w_i`` in ``S-``.
"""

from __future__ import annotations

import math

import pytest
import torch

from nslightning.losses import (
    Constant,
    LinearWarmup,
    NegativeSamplingLoss,
    Schedule,
    WeightedContrastiveLoss,
    pointwise_loss,
    weighted_contrastive_loss,
)

LOSSES = ["logistic", "hinge", "squared"]
F64 = torch.float64


# --------------------------------------------------------------------------- naive reference


def ell_float(s: float, y: float, loss: str, margin: float = 1.0) -> float:
    """ℓ(s, y) written straight from its definition (moderate scores only)."""
    if loss == "logistic":
        return math.log1p(math.exp(-y * s))
    if loss == "hinge":
        return max(0.0, margin - y * s)
    if loss == "squared":
        return (s - y) ** 2
    raise AssertionError(loss)


def ell_tensor(s: torch.Tensor, y: float, loss: str, margin: float = 1.0) -> torch.Tensor:
    """The same on a 0-dim tensor, naively, so autograd can differentiate the reference."""
    if loss == "logistic":
        return torch.log1p(torch.exp(-y * s))
    if loss == "hinge":
        return torch.clamp(margin - y * s, min=0.0)
    if loss == "squared":
        return (s - y) ** 2
    raise AssertionError(loss)


def _flat(pos, neg, mask, weights):
    """Flat per-pair lists: scores (0-dim tensors), kept flags and weights."""
    n_pairs = pos.numel()
    pos_list = list(pos.reshape(-1).unbind())
    neg_rows = [list(row.unbind()) for row in neg.reshape(n_pairs, -1).unbind()]
    if mask is None:
        kept = [[True] * len(row) for row in neg_rows]
    else:
        kept = mask.expand(neg.shape).reshape(n_pairs, -1).tolist()
    w = [1.0] * n_pairs if weights is None else weights.expand(pos.shape).reshape(-1).tolist()
    return pos_list, neg_rows, kept, w


def naive(pos, neg, *, lam=1.0, loss="logistic", margin=1.0, mask=None, weights=None, ell=None):
    """The formula with explicit loops over S+ and S-; returns a 0-dim tensor.

    ``ell=ell_float`` computes in Python floats; ``ell=ell_tensor`` keeps the autograd graph.
    """
    ell = ell or ell_float
    pos_list, neg_rows, kept, w = _flat(pos, neg, mask, weights)
    as_number = ell is ell_float

    pos_num, pos_den = 0.0, 0.0
    for i, s in enumerate(pos_list):  # S+
        s_i = float(s) if as_number else s
        pos_num = pos_num + w[i] * ell(s_i, +1.0, loss, margin)
        pos_den += w[i]
    neg_num, neg_den = 0.0, 0.0
    for i, row in enumerate(neg_rows):  # S-: every kept negative of every pair
        for k, n in enumerate(row):
            if kept[i][k]:
                n_j = float(n) if as_number else n
                neg_num = neg_num + w[i] * ell(n_j, -1.0, loss, margin)
                neg_den += w[i]
    positive = pos_num / pos_den if pos_den > 0 else 0.0 * pos_num
    negative = neg_num / neg_den if neg_den > 0 else 0.0
    total = positive + lam * negative
    return total if torch.is_tensor(total) else torch.tensor(total, dtype=F64)


def random_inputs(shape=(2, 3), k=4, seed=0, dtype=F64, scale=2.0):
    g = torch.Generator().manual_seed(seed)
    pos = torch.randn(shape, generator=g, dtype=dtype) * scale
    neg = torch.randn((*shape, k), generator=g, dtype=dtype) * scale
    mask = torch.rand((*shape, k), generator=g) > 0.4
    mask.reshape(-1, k)[:, 0] = True  # every pair keeps one negative; the counts still differ
    weights = torch.rand(shape, generator=g, dtype=dtype) * 2 + 0.1
    return pos, neg, mask, weights


# --------------------------------------------------------------------------- the reference itself


def test_reference_hand_values():
    """Guards the reference: one pair at score 0 with three negatives at 0, λ = 1."""
    pos, neg = torch.zeros(1, dtype=F64), torch.zeros(1, 3, dtype=F64)
    assert naive(pos, neg).item() == pytest.approx(2 * math.log(2))
    assert naive(pos, neg, loss="hinge").item() == pytest.approx(2.0)
    assert naive(pos, neg, loss="squared").item() == pytest.approx(2.0)


# --------------------------------------------------------------------------- values


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("lam", [0.0, 0.5, 1.0, 3.0])
@pytest.mark.parametrize("use_mask", [False, True], ids=["nomask", "mask"])
@pytest.mark.parametrize("use_weights", [False, True], ids=["noweights", "weights"])
def test_matches_the_naive_reference(loss, lam, use_mask, use_weights):
    pos, neg, mask, weights = random_inputs(seed=LOSSES.index(loss) * 10 + int(lam * 2))
    mask = mask if use_mask else None
    weights = weights if use_weights else None
    got = weighted_contrastive_loss(pos, neg, lam=lam, loss=loss, neg_mask=mask, weights=weights)
    expected = naive(pos, neg, lam=lam, loss=loss, mask=mask, weights=weights)
    assert got.shape == ()
    assert got.dtype == F64
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


def test_one_pair_zero_scores_hand_values():
    pos, neg = torch.zeros(1, dtype=F64), torch.zeros(1, 3, dtype=F64)
    # Each side is a mean over its own set, so three negatives count like one.
    got = weighted_contrastive_loss(pos, neg, lam=1.0)
    assert got.item() == pytest.approx(2 * math.log(2), rel=1e-12)
    got = weighted_contrastive_loss(pos, neg, lam=3.0, loss="hinge", margin=2.0)
    assert got.item() == pytest.approx(2.0 + 3.0 * 2.0, rel=1e-12)


def test_negative_term_pools_all_kept_negatives():
    """S- is one pool: a pair with more kept negatives weighs more than one with fewer."""
    pos = torch.zeros(2, dtype=F64)
    neg = torch.tensor([[1.0, 1.0, 1.0], [-1.0, 0.0, 0.0]], dtype=F64)
    mask = torch.tensor([[True, True, True], [True, False, False]])
    got = weighted_contrastive_loss(pos, neg, lam=1.0, loss="squared", neg_mask=mask)
    # ℓ(s, -1) = (s + 1)^2: three negatives at 4 and one at 0, pooled: 12 / 4 = 3.
    # (A mean of per-pair means would give (4 + 0) / 2 = 2.) Positives: (0 - 1)^2 = 1.
    assert got.item() == pytest.approx(1.0 + 3.0, rel=1e-12)


def test_weights_count_per_pair_on_both_sides():
    pos = torch.tensor([0.0, 2.0], dtype=F64)
    neg = torch.tensor([[1.0, 1.0], [-1.0, -1.0]], dtype=F64)
    weights = torch.tensor([3.0, 1.0], dtype=F64)
    got = weighted_contrastive_loss(pos, neg, lam=1.0, loss="squared", weights=weights)
    # positives: (3·1 + 1·1) / 4 = 1 ; negatives: (3·4 + 3·4 + 1·0 + 1·0) / (3+3+1+1) = 3
    assert got.item() == pytest.approx(4.0, rel=1e-12)


@pytest.mark.parametrize("loss", LOSSES)
def test_hinge_margin_and_float32(loss):
    pos, neg, mask, weights = random_inputs((5,), 3, seed=3, dtype=torch.float32)
    got = weighted_contrastive_loss(
        pos, neg, lam=0.7, loss=loss, margin=1.5, neg_mask=mask, weights=weights
    )
    expected = naive(pos, neg, lam=0.7, loss=loss, margin=1.5, mask=mask, weights=weights).float()
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_broadcast_mask_and_weights():
    pos, neg, _, _ = random_inputs((2, 3), 4, seed=4)
    mask = torch.tensor([True, False, True, True])  # (K,)
    weights = torch.tensor([0.5, 2.0, 1.0], dtype=F64)  # (C,) against (B, C)
    got = weighted_contrastive_loss(pos, neg, lam=0.5, neg_mask=mask, weights=weights)
    expected = naive(pos, neg, lam=0.5, mask=mask, weights=weights)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)
    expanded = weighted_contrastive_loss(
        pos, neg, lam=0.5, neg_mask=mask.expand(2, 3, 4), weights=weights.expand(2, 3)
    )
    torch.testing.assert_close(got, expanded)


@pytest.mark.parametrize("loss", LOSSES)
def test_masked_negative_scores_do_not_matter(loss):
    pos, neg, mask, weights = random_inputs(seed=5)
    got = weighted_contrastive_loss(pos, neg, lam=1.0, loss=loss, neg_mask=mask, weights=weights)
    changed = neg.masked_fill(~mask, 50.0)
    again = weighted_contrastive_loss(
        pos, changed, lam=1.0, loss=loss, neg_mask=mask, weights=weights
    )
    torch.testing.assert_close(again, got)


def test_zero_weight_drops_a_pair_from_both_sides():
    pos, neg, mask, _ = random_inputs((4,), 3, seed=6)
    weights = torch.tensor([1.0, 0.0, 1.0, 1.0], dtype=F64)
    keep = torch.tensor([0, 2, 3])
    got = weighted_contrastive_loss(pos, neg, lam=2.0, neg_mask=mask, weights=weights)
    expected = weighted_contrastive_loss(pos[keep], neg[keep], lam=2.0, neg_mask=mask[keep])
    torch.testing.assert_close(got, expected)


# --------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("use_mask", [False, True], ids=["nomask", "mask"])
@pytest.mark.parametrize("use_weights", [False, True], ids=["noweights", "weights"])
def test_gradients_match_autograd_of_the_naive_reference(loss, use_mask, use_weights):
    pos, neg, mask, weights = random_inputs(seed=7 + LOSSES.index(loss))
    mask = mask if use_mask else None
    weights = weights if use_weights else None
    p1, n1 = pos.clone().requires_grad_(True), neg.clone().requires_grad_(True)
    p2, n2 = pos.clone().requires_grad_(True), neg.clone().requires_grad_(True)
    weighted_contrastive_loss(p1, n1, lam=1.5, loss=loss, neg_mask=mask, weights=weights).backward()
    naive(p2, n2, lam=1.5, loss=loss, mask=mask, weights=weights, ell=ell_tensor).backward()
    torch.testing.assert_close(p1.grad, p2.grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(n1.grad, n2.grad, rtol=1e-10, atol=1e-12)
    if mask is not None:
        assert (n1.grad[~mask] == 0).all()


def test_logistic_analytic_gradient():
    # d/ds log(1+e^{-s}) = -σ(-s) ; d/dn log(1+e^{n}) = σ(n); means over 2 pairs and 4 negatives.
    pos = torch.tensor([0.3, -1.2], dtype=F64, requires_grad=True)
    neg = torch.tensor([[0.5, -2.0], [1.0, 0.0]], dtype=F64, requires_grad=True)
    weighted_contrastive_loss(pos, neg, lam=2.0).backward()
    torch.testing.assert_close(pos.grad, -torch.sigmoid(-pos.detach()) / 2)
    torch.testing.assert_close(neg.grad, 2.0 * torch.sigmoid(neg.detach()) / 4)


@pytest.mark.parametrize("loss", LOSSES)
def test_gradcheck_float64(loss):
    pos, neg, mask, weights = random_inputs((2, 2), 3, seed=9)

    def fn(p, n, w):
        return weighted_contrastive_loss(p, n, lam=0.8, loss=loss, neg_mask=mask, weights=w)

    inputs = (pos.requires_grad_(True), neg.requires_grad_(True), weights.requires_grad_(True))
    assert torch.autograd.gradcheck(fn, inputs)


@pytest.mark.parametrize("loss", LOSSES)
def test_lam_zero_is_the_positive_term_alone(loss):
    pos, neg, mask, weights = random_inputs(seed=10)
    pos.requires_grad_(True)
    neg.requires_grad_(True)
    got = weighted_contrastive_loss(pos, neg, lam=0.0, loss=loss, neg_mask=mask, weights=weights)
    w = weights.reshape(-1).tolist()
    s = pos.detach().reshape(-1).tolist()
    expected = sum(wi * ell_float(si, 1.0, loss) for wi, si in zip(w, s, strict=True)) / sum(w)
    assert got.item() == pytest.approx(expected, rel=1e-12)
    got.backward()
    assert neg.grad is None or (neg.grad == 0).all()
    assert pos.grad is not None and (pos.grad != 0).any()
    # The negatives do not matter at all.
    other = weighted_contrastive_loss(
        pos, neg * 100 + 7, lam=0.0, loss=loss, neg_mask=mask, weights=weights
    )
    assert other.item() == got.item()


def test_lam_zero_does_not_compute_the_negative_term():
    """Documented: with λ = 0 the negative term is not computed, so even a non-finite
    negative score cannot turn the loss into NaN (0 · inf would)."""
    pos, neg, _, weights = random_inputs(seed=20)
    neg[0, 0, 0] = float("nan")
    neg[1, 2, 3] = float("inf")
    for loss in LOSSES:
        got = weighted_contrastive_loss(pos, neg, lam=0.0, loss=loss, weights=weights)
        assert torch.isfinite(got)
        torch.testing.assert_close(
            got, naive(pos, torch.zeros_like(neg), lam=0.0, loss=loss, weights=weights)
        )


# --------------------------------------------------------------------------- extremes and edges


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_extreme_scores_give_finite_values_and_gradients(loss, dtype):
    big = 1e4
    pos = torch.tensor([big, -big], dtype=dtype, requires_grad=True)
    neg = torch.tensor([[big, -big], [-big, big]], dtype=dtype, requires_grad=True)
    value = weighted_contrastive_loss(pos, neg, lam=1.0, loss=loss)
    assert torch.isfinite(value)
    value.backward()
    assert torch.isfinite(pos.grad).all() and torch.isfinite(neg.grad).all()
    expected = {
        # positives: ℓ(1e4,+1) ≈ 0, ℓ(-1e4,+1) ≈ 1e4 ; negatives likewise: two 0s and two 1e4
        "logistic": big / 2 + big / 2,
        "hinge": (big + 1) / 2 + (big + 1) / 2,
        "squared": ((big - 1) ** 2 + (big + 1) ** 2) / 2 * 2,
    }[loss]
    assert value.item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_logistic_huge_scores(dtype):
    huge = 1e30
    pos = torch.tensor([huge, -huge], dtype=dtype, requires_grad=True)
    neg = torch.tensor([[huge, -huge], [-huge, huge]], dtype=dtype, requires_grad=True)
    value = weighted_contrastive_loss(pos, neg, lam=1.0, loss="logistic")
    assert torch.isfinite(value)
    assert value.item() == pytest.approx(huge, rel=1e-5)  # huge/2 from each side
    value.backward()
    assert torch.isfinite(pos.grad).all() and torch.isfinite(neg.grad).all()
    torch.testing.assert_close(pos.grad, torch.tensor([0.0, -0.5], dtype=dtype))
    torch.testing.assert_close(neg.grad, torch.tensor([[0.25, 0.0], [0.0, 0.25]], dtype=dtype))


@pytest.mark.parametrize("loss", LOSSES)
def test_all_negatives_masked_gives_a_zero_negative_term(loss):
    pos, neg, _, weights = random_inputs(seed=11)
    pos.requires_grad_(True)
    neg.requires_grad_(True)
    mask = torch.zeros(neg.shape, dtype=torch.bool)
    got = weighted_contrastive_loss(pos, neg, lam=3.0, loss=loss, neg_mask=mask, weights=weights)
    positive = weighted_contrastive_loss(pos, neg, lam=0.0, loss=loss, weights=weights)
    assert torch.isfinite(got)
    torch.testing.assert_close(got, positive)
    got.backward()
    assert torch.isfinite(pos.grad).all()
    assert neg.grad is None or (neg.grad == 0).all()


def test_all_weights_zero_is_zero_not_nan():
    pos, neg, _, _ = random_inputs(seed=12)
    got = weighted_contrastive_loss(pos, neg, lam=1.0, weights=torch.zeros(2, 3, dtype=F64))
    assert got.item() == 0.0


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("lam", [-0.1, -1.0, float("nan"), float("inf")])
def test_bad_lam_raises(lam):
    pos, neg, _, _ = random_inputs(seed=13)
    with pytest.raises(ValueError, match="lam"):
        weighted_contrastive_loss(pos, neg, lam=lam)


@pytest.mark.parametrize(
    "pos_shape,neg_shape",
    [((3,), (4, 2)), ((3,), (3,)), ((2, 3), (3, 2, 1)), ((3,), (2, 3, 1))],
)
def test_score_shape_mismatch_raises(pos_shape, neg_shape):
    with pytest.raises(ValueError, match="neg_scores"):
        weighted_contrastive_loss(torch.zeros(pos_shape), torch.zeros(neg_shape))


@pytest.mark.parametrize("mask_shape", [(2, 3, 5), (3, 4, 4), (2,)])
def test_mask_shape_mismatch_raises(mask_shape):
    pos, neg, _, _ = random_inputs((2, 3), 4, seed=14)
    with pytest.raises(ValueError, match="neg_mask"):
        weighted_contrastive_loss(pos, neg, neg_mask=torch.ones(mask_shape, dtype=torch.bool))


@pytest.mark.parametrize("weights_shape", [(2, 4), (2, 3, 4), (4,)])
def test_weights_shape_mismatch_raises(weights_shape):
    pos, neg, _, _ = random_inputs((2, 3), 4, seed=15)
    with pytest.raises(ValueError, match="weights"):
        weighted_contrastive_loss(pos, neg, weights=torch.ones(weights_shape, dtype=F64))


def test_unknown_loss_raises():
    pos, neg, _, _ = random_inputs(seed=16)
    with pytest.raises(ValueError, match="loss"):
        weighted_contrastive_loss(pos, neg, loss="cosine")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="loss"):
        pointwise_loss(pos, 1.0, "cosine")  # type: ignore[arg-type]


@pytest.mark.parametrize("loss", LOSSES)
def test_pointwise_loss_elementwise(loss):
    scores = torch.linspace(-3, 3, 13, dtype=F64)
    for y in (1.0, -1.0):
        got = pointwise_loss(scores, y, loss, margin=0.5)
        expected = torch.tensor([ell_float(s, y, loss, 0.5) for s in scores.tolist()], dtype=F64)
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- the module


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("lam", [0.0, 0.5, 3.0])
def test_module_equals_the_function(loss, lam):
    pos, neg, mask, weights = random_inputs(seed=17)
    module = WeightedContrastiveLoss(lam=lam, loss=loss, margin=0.7)
    assert isinstance(module, NegativeSamplingLoss)
    assert list(module.parameters()) == []
    expected = weighted_contrastive_loss(
        pos, neg, lam=lam, loss=loss, margin=0.7, neg_mask=mask, weights=weights
    )
    torch.testing.assert_close(module(pos, neg, neg_mask=mask, weights=weights), expected)
    # log_q means nothing to this loss.
    torch.testing.assert_close(
        module(pos, neg, neg_mask=mask, log_q=torch.randn_like(neg), weights=weights), expected
    )
    torch.testing.assert_close(
        module(pos, neg), weighted_contrastive_loss(pos, neg, lam=lam, loss=loss, margin=0.7)
    )
    assert module.logged_values() == {"lam": lam}


@pytest.mark.parametrize("lam", [0.0, 0.5])
def test_sum_is_the_mean_times_the_total_positive_weight(lam):
    # The loss is not a sum over pairs: "sum" makes its positive term the weighted sum and
    # scales the negative mean to the same count.
    pos, neg, mask, weights = random_inputs(seed=20)
    total = weighted_contrastive_loss(pos, neg, lam=lam, neg_mask=mask, weights=weights,
                                      reduction="sum")
    expected = naive(pos, neg, lam=lam, mask=mask, weights=weights) * weights.sum()
    torch.testing.assert_close(total, expected)
    positive = (pointwise_loss(pos, 1.0) * weights).sum()
    if lam == 0:
        torch.testing.assert_close(total, positive)
    with pytest.raises(ValueError, match="no per-pair 'none'"):
        weighted_contrastive_loss(pos, neg, reduction="none")  # type: ignore[arg-type]


def test_module_defaults():
    pos, neg, _, _ = random_inputs(seed=18)
    module = WeightedContrastiveLoss()
    torch.testing.assert_close(module(pos, neg), naive(pos, neg, lam=1.0, loss="logistic"))
    assert module.logged_values() == {"lam": 1.0}


def test_module_constant_schedule_ignores_the_step():
    module = WeightedContrastiveLoss(lam=Constant(0.25))
    for step in (0, 1, 1000):
        module.set_step(step)
        assert module.logged_values() == {"lam": 0.25}


def test_module_linear_warmup_lam():
    pos, neg, mask, weights = random_inputs(seed=19)
    module = WeightedContrastiveLoss(lam=LinearWarmup(end=1.0, steps=10), loss="hinge")
    for step, lam in [(0, 0.0), (5, 0.5), (10, 1.0), (20, 1.0), (3, 0.3)]:
        module.set_step(step)
        assert module.lam == pytest.approx(lam)
        assert module.logged_values() == {"lam": pytest.approx(lam)}
        got = module(pos, neg, neg_mask=mask, weights=weights)
        expected = naive(pos, neg, lam=lam, loss="hinge", mask=mask, weights=weights)
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


def test_module_before_any_step_uses_the_schedule_start():
    module = WeightedContrastiveLoss(lam=LinearWarmup(end=2.0, steps=4, start=1.0))
    assert module.logged_values() == {"lam": 1.0}


def test_schedule_ending_negative_raises_at_construction():
    with pytest.raises(ValueError, match="lam"):
        WeightedContrastiveLoss(lam=LinearWarmup(end=-1.0, steps=10))  # 0 at step 0 only


class Dip(Schedule):
    """Negative in the middle of the run only."""

    def __call__(self, step: int) -> float:
        return -1.0 if step == 5 else 1.0


def test_schedule_going_negative_mid_run_raises_at_set_step():
    module = WeightedContrastiveLoss(lam=Dip())
    module.set_step(4)
    with pytest.raises(ValueError, match="lam"):
        module.set_step(5)


@pytest.mark.parametrize("lam", [-0.5, float("nan"), float("inf")])
def test_module_bad_float_lam_raises_at_construction(lam):
    with pytest.raises(ValueError, match="lam"):
        WeightedContrastiveLoss(lam=lam)


def test_module_negative_schedule_start_raises_at_construction():
    with pytest.raises(ValueError, match="lam"):
        WeightedContrastiveLoss(lam=LinearWarmup(end=1.0, steps=10, start=-1.0))


def test_module_unknown_loss_raises_at_construction():
    with pytest.raises(ValueError, match="loss"):
        WeightedContrastiveLoss(loss="cosine")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- schedules


def test_linear_warmup_values():
    schedule = LinearWarmup(end=3.0, steps=4, start=1.0)
    assert [schedule(s) for s in (-2, 0, 1, 2, 4, 100)] == pytest.approx(
        [1.0, 1.0, 1.5, 2.0, 3.0, 3.0]
    )
    assert Constant(2)(0) == 2.0 and Constant(2)(10**6) == 2.0


@pytest.mark.parametrize("kwargs", [{"steps": 0}, {"steps": -3}])
def test_linear_warmup_needs_a_positive_length(kwargs):
    with pytest.raises(ValueError, match="steps"):
        LinearWarmup(end=1.0, **kwargs)


@pytest.mark.parametrize("start,end", [(float("nan"), 1.0), (0.0, float("inf"))])
def test_linear_warmup_needs_finite_ends(start, end):
    with pytest.raises(ValueError, match="finite"):
        LinearWarmup(end=end, steps=10, start=start)
