"""sgns_loss against a naive, loop-by-loop reference."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from nslightning.deprecation import NSLightningDeprecationWarning
from nslightning.losses import SGNSLoss, sgns_loss


def log_sigmoid(x: float) -> float:
    return math.log(1.0 / (1.0 + math.exp(-x)))


def naive_per_pair(pos, neg, mask=None, weight=None) -> list[float]:
    """Per-pair losses, flattened over the leading dims, with explicit Python loops."""
    pos_flat = pos.reshape(-1).tolist()
    neg_flat = neg.reshape(len(pos_flat), -1).tolist()
    if mask is None:
        mask_flat = [[True] * len(row) for row in neg_flat]
    else:
        mask_flat = mask.expand_as(neg).reshape(len(pos_flat), -1).tolist()
    weight_flat = [1.0] * len(pos_flat) if weight is None else weight.reshape(-1).tolist()
    losses = []
    for i, s in enumerate(pos_flat):
        loss = -log_sigmoid(s)
        for k, n in enumerate(neg_flat[i]):
            if mask_flat[i][k]:
                loss -= log_sigmoid(-n)
        losses.append(loss * weight_flat[i])
    return losses


def naive(pos, neg, mask=None, weight=None, reduction="mean"):
    losses = naive_per_pair(pos, neg, mask, weight)
    if reduction == "none":
        return torch.tensor(losses, dtype=torch.float64).reshape(pos.shape)
    total = sum(losses)
    if reduction == "sum":
        return torch.tensor(total, dtype=torch.float64)
    denominator = len(losses) if weight is None else float(weight.sum())
    return torch.tensor(total / denominator, dtype=torch.float64)


def random_inputs(shape, k, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    pos = torch.randn(shape, generator=g, dtype=dtype) * 3
    neg = torch.randn((*shape, k), generator=g, dtype=dtype) * 3
    mask = torch.rand((*shape, k), generator=g) > 0.3
    weight = torch.rand(shape, generator=g, dtype=dtype) * 2
    return pos, neg, mask, weight


def test_one_pair_zero_scores_is_two_log_two():
    loss = sgns_loss(torch.tensor([0.0]), torch.tensor([[0.0]]))
    assert loss.item() == pytest.approx(2 * math.log(2), rel=1e-6)


def test_hand_computed_values():
    # -log σ(2) - log σ(-1) - log σ(3)
    pos, neg = torch.tensor([2.0]), torch.tensor([[1.0, -3.0]])
    expected = -log_sigmoid(2.0) - log_sigmoid(-1.0) - log_sigmoid(3.0)
    assert sgns_loss(pos, neg, reduction="sum").item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("shape", [(1,), (3,), (2, 3)])
@pytest.mark.parametrize("k", [1, 4])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize(
    "use_mask,use_weight", list(itertools.product([False, True], [False, True]))
)
def test_matches_the_naive_reference(shape, k, reduction, use_mask, use_weight):
    pos, neg, mask, weight = random_inputs(shape, k, seed=sum(shape) + k)
    mask = mask if use_mask else None
    weight = weight if use_weight else None
    got = sgns_loss(pos, neg, neg_mask=mask, weights=weight, reduction=reduction)
    expected = naive(pos, neg, mask, weight, reduction)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


def test_float32_matches_the_reference():
    pos, neg, mask, weight = random_inputs((4,), 3, seed=5, dtype=torch.float32)
    got = sgns_loss(pos, neg, neg_mask=mask, weights=weight, reduction="none")
    expected = naive(pos, neg, mask, weight, "none").float()
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_masked_negative_is_dropped():
    pos = torch.tensor([0.5, -1.0], dtype=torch.float64)
    neg = torch.tensor([[1.0, 2.0, -0.5], [0.3, 0.0, 4.0]], dtype=torch.float64)
    mask = torch.tensor([[True, False, True], [False, False, False]])
    got = sgns_loss(pos, neg, neg_mask=mask, reduction="none")
    expected_0 = sgns_loss(pos[:1], neg[:1, [0, 2]], reduction="none")
    expected_1 = -torch.nn.functional.logsigmoid(pos[1:])
    torch.testing.assert_close(got, torch.cat([expected_0, expected_1]))
    # The masked score does not matter at all.
    changed = neg.clone()
    changed[0, 1] = 1e3
    changed[1] = -7.0
    torch.testing.assert_close(sgns_loss(pos, changed, neg_mask=mask, reduction="none"), got)


def test_broadcast_mask():
    pos, neg, _, _ = random_inputs((3,), 4, seed=2)
    column_mask = torch.tensor([True, False, True, True])
    got = sgns_loss(pos, neg, neg_mask=column_mask, reduction="none")
    expected = sgns_loss(pos, neg, neg_mask=column_mask.expand(3, 4), reduction="none")
    torch.testing.assert_close(got, expected)


def test_zero_weight_drops_a_pair():
    pos, neg, mask, _ = random_inputs((4,), 3, seed=3)
    weight = torch.tensor([1.0, 0.0, 1.0, 1.0], dtype=torch.float64)
    keep = torch.tensor([0, 2, 3])
    for reduction in ("sum", "mean"):
        got = sgns_loss(pos, neg, neg_mask=mask, weights=weight, reduction=reduction)
        expected = sgns_loss(pos[keep], neg[keep], neg_mask=mask[keep], reduction=reduction)
        torch.testing.assert_close(got, expected)
    none = sgns_loss(pos, neg, neg_mask=mask, weights=weight, reduction="none")
    assert none[1].item() == 0.0


def test_reductions_relate():
    pos, neg, mask, weight = random_inputs((5,), 3, seed=4)
    none = sgns_loss(pos, neg, neg_mask=mask, weights=weight, reduction="none")
    total = sgns_loss(pos, neg, neg_mask=mask, weights=weight, reduction="sum")
    mean = sgns_loss(pos, neg, neg_mask=mask, weights=weight, reduction="mean")
    torch.testing.assert_close(total, none.sum())
    torch.testing.assert_close(mean, none.sum() / weight.sum())  # mean divides by total weight
    unweighted = sgns_loss(pos, neg, neg_mask=mask, reduction="none")
    torch.testing.assert_close(sgns_loss(pos, neg, neg_mask=mask), unweighted.mean())
    assert total.dim() == 0 and mean.dim() == 0 and none.shape == (5,)


def test_default_reduction_is_mean():
    pos, neg, _, _ = random_inputs((6,), 2, seed=6)
    torch.testing.assert_close(sgns_loss(pos, neg), sgns_loss(pos, neg, reduction="mean"))


def test_mean_with_all_zero_weights_is_zero_not_nan():
    pos, neg, _, _ = random_inputs((3,), 2, seed=7)
    loss = sgns_loss(pos, neg, weights=torch.zeros(3, dtype=torch.float64))
    assert loss.item() == 0.0


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_gradcheck_float64(reduction):
    pos, neg, mask, weight = random_inputs((2, 3), 3, seed=8)
    pos.requires_grad_(True)
    neg.requires_grad_(True)
    weight.requires_grad_(True)

    def fn(p, n, w):
        return sgns_loss(p, n, neg_mask=mask, weights=w, reduction=reduction)

    assert torch.autograd.gradcheck(fn, (pos, neg, weight))
    assert torch.autograd.gradgradcheck(fn, (pos, neg, weight))


def test_analytic_gradient():
    # d/ds [-log σ(s)] = σ(s) - 1 ; d/dn [-log σ(-n)] = σ(n)
    pos = torch.tensor([0.7, -2.0], dtype=torch.float64, requires_grad=True)
    neg = torch.tensor([[1.5, -0.2], [0.0, 3.0]], dtype=torch.float64, requires_grad=True)
    sgns_loss(pos, neg, reduction="sum").backward()
    torch.testing.assert_close(pos.grad, torch.sigmoid(pos.detach()) - 1)
    torch.testing.assert_close(neg.grad, torch.sigmoid(neg.detach()))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_extreme_scores_are_finite(dtype):
    pos = torch.tensor([1e4, -1e4, 1e4, -1e4], dtype=dtype, requires_grad=True)
    neg = torch.tensor([[1e4], [1e4], [-1e4], [-1e4]], dtype=dtype, requires_grad=True)
    loss = sgns_loss(pos, neg, reduction="none")
    assert torch.isfinite(loss).all()
    torch.testing.assert_close(
        loss.detach(), torch.tensor([1e4, 2e4, 0.0, 1e4], dtype=dtype), rtol=1e-6, atol=1e-6
    )
    loss.sum().backward()
    assert torch.isfinite(pos.grad).all() and torch.isfinite(neg.grad).all()
    torch.testing.assert_close(pos.grad, torch.tensor([0.0, -1.0, 0.0, -1.0], dtype=dtype))
    torch.testing.assert_close(neg.grad, torch.tensor([[1.0], [1.0], [0.0], [0.0]], dtype=dtype))
    mean = sgns_loss(pos.detach(), neg.detach(), weights=torch.ones(4, dtype=dtype))
    assert torch.isfinite(mean)


@pytest.mark.parametrize(
    "pos_shape,neg_shape",
    [((3,), (4, 2)), ((3,), (3,)), ((2, 3), (3, 2, 1)), ((3,), (2, 3, 1)), ((3,), ())],
)
def test_shape_mismatch_raises(pos_shape, neg_shape):
    pos, neg = torch.zeros(pos_shape), torch.zeros(neg_shape)
    with pytest.raises(ValueError, match="neg_scores"):
        sgns_loss(pos, neg)


def test_scalar_positive_with_k_negatives_is_allowed():
    loss = sgns_loss(torch.tensor(0.0), torch.zeros(3), reduction="none")
    assert loss.shape == ()
    assert loss.item() == pytest.approx(4 * math.log(2), rel=1e-6)


def test_unknown_reduction_raises():
    with pytest.raises(ValueError, match="reduction"):
        sgns_loss(torch.zeros(2), torch.zeros(2, 1), reduction="max")  # type: ignore[arg-type]


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_module_equals_function(reduction):
    pos, neg, mask, weight = random_inputs((2, 3), 4, seed=9)
    module = SGNSLoss(reduction=reduction)
    assert module.reduction == reduction
    torch.testing.assert_close(
        module(pos, neg, neg_mask=mask, weights=weight),
        sgns_loss(pos, neg, neg_mask=mask, weights=weight, reduction=reduction),
    )
    torch.testing.assert_close(module(pos, neg), sgns_loss(pos, neg, reduction=reduction))
    assert list(module.parameters()) == []


def test_module_sum_is_bit_identical_to_the_function():
    # the skip-gram task's autograd engine relies on it
    pos, neg, mask, weight = random_inputs((5, 4), 3, seed=12, dtype=torch.float32)
    for lam in (1.0, 0.5):
        assert torch.equal(
            SGNSLoss(lam=lam, reduction="sum")(pos, neg, neg_mask=mask[:, :1], weights=weight),
            sgns_loss(pos, neg, neg_mask=mask[:, :1], weights=weight, reduction="sum", lam=lam),
        )


def test_module_rejects_reduction_none_and_the_old_argument_order():
    with pytest.raises(ValueError, match="reduction='none'"):
        SGNSLoss(reduction="none")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="first argument is lam"):
        SGNSLoss("sum")  # type: ignore[arg-type]


def test_old_spellings_warn_and_give_the_same_value():
    pos, neg, mask, weight = random_inputs((3,), 2, seed=13)
    expected = sgns_loss(pos, neg, neg_mask=mask, weights=weight)
    with pytest.warns(NSLightningDeprecationWarning, match="weights="):
        torch.testing.assert_close(sgns_loss(pos, neg, neg_mask=mask, weight=weight), expected)
    with pytest.warns(NSLightningDeprecationWarning, match="positional neg_mask"):
        torch.testing.assert_close(sgns_loss(pos, neg, mask, weights=weight), expected)
    with pytest.raises(TypeError, match="weights= alone"):
        sgns_loss(pos, neg, weight=weight, weights=weight)
    with pytest.raises(TypeError, match="by keyword"):
        sgns_loss(pos, neg, mask, weight)


def test_module_default_reduction_is_mean():
    pos, neg, _, _ = random_inputs((4,), 2, seed=10)
    torch.testing.assert_close(SGNSLoss()(pos, neg), sgns_loss(pos, neg))


def test_mean_with_broadcast_weight_divides_by_total_weight():
    pos, neg, _, _ = random_inputs((4,), 2, seed=11)
    ones = torch.ones(1, dtype=torch.float64)  # broadcastable to (4,), as documented
    torch.testing.assert_close(sgns_loss(pos, neg, weights=ones), sgns_loss(pos, neg))


def test_lam_weights_the_negative_term() -> None:
    pos = torch.tensor([0.3, -1.2])
    neg = torch.tensor([[0.5, -2.0, 1.0], [3.0, 0.1, -0.4]])
    mask = torch.tensor([[True, False, True], [True, True, True]])
    positive = -F.logsigmoid(pos)
    negative = -(F.logsigmoid(-neg) * mask).sum(-1)
    for lam in (0.0, 0.25, 3.0):
        expected = positive + lam * negative
        torch.testing.assert_close(
            sgns_loss(pos, neg, neg_mask=mask, lam=lam, reduction="none"), expected
        )
        torch.testing.assert_close(
            SGNSLoss(lam=lam, reduction="sum")(pos, neg, neg_mask=mask), expected.sum()
        )
    with pytest.raises(ValueError, match=r"lam \(λ\) must be >= 0"):
        sgns_loss(pos, neg, lam=-0.1)
    with pytest.raises(ValueError, match=r"lam \(λ\) must be >= 0"):
        SGNSLoss(lam=-1.0)


def test_sgns_loss_rejects_masks_that_would_broadcast_the_loss() -> None:
    with pytest.raises(ValueError, match="weights of shape"):
        sgns_loss(torch.zeros(3), torch.zeros(3, 2), weights=torch.ones(3, 1))
    with pytest.raises(ValueError, match="neg_mask of shape"):
        sgns_loss(
            torch.zeros(3), torch.zeros(3, 2), neg_mask=torch.ones(3, 1, 2, dtype=torch.bool)
        )
