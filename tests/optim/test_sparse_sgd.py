"""SparseSGD performs exactly torch.optim.SGD's plain update."""

from __future__ import annotations

import copy
import gc
import math

import pytest
import torch

from nslightning.models import SkipGramEmbeddings
from nslightning.optim import SparseSGD


def uncoalesced_grad(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    indices = torch.tensor([[0, 2, 0, 5, 2, 2, 4]])
    values = torch.randn(indices.shape[1], 3, generator=g, dtype=torch.float64)
    grad = torch.sparse_coo_tensor(indices, values, (6, 3), check_invariants=True)
    assert not grad.is_coalesced()
    return grad


def param(seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(6, 3, generator=g, dtype=torch.float64).requires_grad_()


def step_both(grad: torch.Tensor, lr: float) -> tuple[torch.Tensor, torch.Tensor]:
    mine, theirs = param(), param()
    mine.grad = grad.clone()
    theirs.grad = grad.clone()
    SparseSGD([mine], lr=lr, max_repeats=None).step()
    torch.optim.SGD([theirs], lr=lr).step()
    return mine.detach(), theirs.detach()


@pytest.mark.parametrize("lr", [0.025, 1.0, 3.5])
def test_sparse_uncoalesced_step_equals_sgd(lr: float):
    mine, theirs = step_both(uncoalesced_grad(), lr)
    torch.testing.assert_close(mine, theirs, rtol=1e-12, atol=1e-12)
    assert not torch.equal(mine, param().detach())
    # Rows without gradient are untouched.
    torch.testing.assert_close(mine[[1, 3]], param().detach()[[1, 3]], rtol=0, atol=0)


@pytest.mark.parametrize("lr", [0.025, 1.0])
def test_dense_step_equals_sgd(lr: float):
    grad = torch.randn(6, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    mine, theirs = step_both(grad, lr)
    torch.testing.assert_close(mine, theirs, rtol=1e-12, atol=1e-12)


def test_update_is_minus_lr_times_summed_rows():
    p = param()
    before = p.detach().clone()
    grad = uncoalesced_grad()
    p.grad = grad
    SparseSGD([p], lr=0.5).step()
    torch.testing.assert_close(p.detach(), before - 0.5 * grad.to_dense())


def test_grad_is_not_modified_and_none_grads_are_skipped():
    p, q = param(), param(seed=7)
    q_before = q.detach().clone()
    grad = uncoalesced_grad()
    p.grad = grad
    values_before = grad._values().clone()
    SparseSGD([p, q], lr=0.1).step()
    assert torch.equal(p.grad._values(), values_before)
    assert torch.equal(q.detach(), q_before)


def test_param_groups_use_their_own_lr():
    a, b = param(seed=1), param(seed=2)
    ra, rb = param(seed=1), param(seed=2)
    grad_a, grad_b = uncoalesced_grad(4), uncoalesced_grad(5).to_dense()
    for p, grad in ((a, grad_a), (ra, grad_a), (b, grad_b), (rb, grad_b)):
        p.grad = grad.clone()
    SparseSGD([{"params": [a]}, {"params": [b], "lr": 0.3}], lr=0.1).step()
    torch.optim.SGD([{"params": [ra]}, {"params": [rb], "lr": 0.3}], lr=0.1).step()
    torch.testing.assert_close(a.detach(), ra.detach())
    torch.testing.assert_close(b.detach(), rb.detach())


def test_closure_is_called_and_its_loss_returned():
    p = param()
    calls = []

    def closure() -> float:
        calls.append(torch.is_grad_enabled())
        p.grad = None
        loss = (p**2).sum()
        loss.backward()
        return float(loss.detach())

    before = p.detach().clone()
    loss = SparseSGD([p], lr=0.1).step(closure)
    assert calls == [True]
    assert loss == pytest.approx(float((before**2).sum()))
    torch.testing.assert_close(p.detach(), before - 0.1 * 2 * before)
    assert SparseSGD([p], lr=0.1).step() is None


def test_several_skipgram_steps_match_sgd():
    torch.manual_seed(0)
    mine = SkipGramEmbeddings(9, 5, sparse=True).double()
    theirs = SkipGramEmbeddings(9, 5, sparse=True).double()
    theirs.load_state_dict(mine.state_dict())
    with torch.no_grad():
        for model in (mine, theirs):
            model.output.weight.copy_(torch.linspace(-1, 1, 45, dtype=torch.float64).view(9, 5))
    opt_mine = SparseSGD(mine.parameters(), lr=0.05, max_repeats=None)
    opt_theirs = torch.optim.SGD(theirs.parameters(), lr=0.05)
    g = torch.Generator().manual_seed(1)
    for _ in range(4):
        anchors = torch.randint(0, 9, (6, 2), generator=g)
        targets = torch.randint(0, 9, (6, 3), generator=g)
        for model, opt in ((mine, opt_mine), (theirs, opt_theirs)):
            opt.zero_grad()
            model(anchors, targets).sigmoid().sum().backward()
            opt.step()
    torch.testing.assert_close(mine.input.weight, theirs.input.weight, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(mine.output.weight, theirs.output.weight, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("lr", [0.0, -0.1, math.nan])
def test_non_positive_lr_raises(lr: float):
    with pytest.raises(ValueError, match="lr"):
        SparseSGD([param()], lr=lr)


def test_default_lr_is_word2vec_alpha():
    assert SparseSGD([param()]).param_groups[0]["lr"] == pytest.approx(0.025)


def test_max_repeats_caps_rows_that_repeat_more_often() -> None:
    weight = torch.zeros(3, 2, requires_grad=True)
    rows = torch.tensor([0] * 64 + [1] * 4)  # row 0 repeats 64 times, row 1 four times
    values = torch.ones(68, 2)
    weight.grad = torch.sparse_coo_tensor(rows.unsqueeze(0), values, (3, 2))
    SparseSGD([weight], lr=0.5, max_repeats=32).step()
    # row 0: 64 contributions scaled by 32/64 -> the sum of 32; row 1 under the cap: plain sum
    assert torch.allclose(weight.detach(), torch.tensor([[-16.0, -16.0], [-2.0, -2.0], [0, 0]]))
    plain = torch.zeros(3, 2, requires_grad=True)
    plain.grad = torch.sparse_coo_tensor(rows.unsqueeze(0), values, (3, 2))
    SparseSGD([plain], lr=0.5, max_repeats=None).step()
    assert torch.allclose(plain.detach()[0], torch.tensor([-32.0, -32.0]))


@pytest.mark.parametrize("max_repeats", [0.5, 0, -1])
def test_max_repeats_below_one_is_rejected(max_repeats: float) -> None:
    with pytest.raises(ValueError, match="max_repeats"):
        SparseSGD([torch.zeros(2, requires_grad=True)], max_repeats=max_repeats)


def test_frozen_parameters_are_accepted_and_left_alone() -> None:
    frozen = torch.nn.Embedding(4, 2, sparse=True).requires_grad_(False)
    live = torch.nn.Embedding(4, 2, sparse=True)
    before = frozen.weight.detach().clone()
    optimizer = SparseSGD([*frozen.parameters(), *live.parameters()], lr=0.1)
    (frozen(torch.tensor([1])) + live(torch.tensor([1]))).sum().backward()
    optimizer.step()
    assert torch.equal(frozen.weight, before)


def test_the_gradient_hooks_go_with_the_optimizer() -> None:
    table = torch.nn.Embedding(4, 2, sparse=True)
    optimizer = SparseSGD(table.parameters(), lr=0.1)
    assert len(table.weight._backward_hooks or {}) == 1
    SparseSGD(table.parameters(), lr=0.1)  # a second one, dropped at once
    assert len(table.weight._backward_hooks or {}) == 1
    del optimizer
    gc.collect()
    assert not table.weight._backward_hooks


def test_a_copy_keeps_the_cap() -> None:
    table = torch.nn.Embedding(4, 2, sparse=True)
    copied = copy.deepcopy(SparseSGD(table.parameters(), lr=0.1, max_repeats=3.0))
    assert copied.max_repeats == 3.0
    copied.zero_grad()  # its own (empty) record of rows
