"""pair_scores' custom backward against plain autograd; SkipGramEmbeddings' init."""

from __future__ import annotations

import pytest
import torch

from nslightning.models import SkipGramEmbeddings
from nslightning.models.pair_scores import pair_scores

V, D = 7, 4


def tables(seed: int = 0, dtype: torch.dtype = torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(V, D, generator=g, dtype=dtype), torch.randn(V, D, generator=g, dtype=dtype)


def reference(input_weight, output_weight, anchors, targets):
    return torch.bmm(input_weight[anchors], output_weight[targets].transpose(1, 2))


ID_CASES = {
    # (anchors (N, C), targets (N, T))
    "distinct": ([[0, 1], [2, 3], [4, 5]], [[6, 5, 4], [3, 2, 1], [0, 6, 5]]),
    "repeated": ([[1, 1], [1, 3], [3, 1]], [[2, 2, 2], [1, 2, 1], [2, 3, 3]]),
    "same-ids-both-sides": ([[2, 4], [4, 2]], [[2, 4, 2], [4, 4, 2]]),
    "single": ([[5]], [[5]]),
}


def ids(case: str) -> tuple[torch.Tensor, torch.Tensor]:
    anchors, targets = ID_CASES[case]
    return torch.tensor(anchors), torch.tensor(targets)


@pytest.mark.parametrize("case", sorted(ID_CASES))
@pytest.mark.parametrize("sparse", [True, False])
def test_forward_equals_bmm(case: str, sparse: bool):
    inp, out = tables()
    anchors, targets = ids(case)
    got = pair_scores(inp, out, anchors, targets, sparse=sparse)
    assert got.shape == (anchors.shape[0], anchors.shape[1], targets.shape[1])
    torch.testing.assert_close(got, reference(inp, out, anchors, targets), rtol=0, atol=0)


@pytest.mark.parametrize("case", sorted(ID_CASES))
@pytest.mark.parametrize("sparse", [True, False])
def test_gradients_equal_plain_autograd(case: str, sparse: bool):
    base_in, base_out = tables(seed=1)
    anchors, targets = ids(case)
    upstream = torch.randn(
        anchors.shape[0], anchors.shape[1], targets.shape[1],
        generator=torch.Generator().manual_seed(2), dtype=torch.float64,
    )

    inp, out = base_in.clone().requires_grad_(), base_out.clone().requires_grad_()
    (pair_scores(inp, out, anchors, targets, sparse=sparse) * upstream).sum().backward()
    ref_in, ref_out = base_in.clone().requires_grad_(), base_out.clone().requires_grad_()
    (reference(ref_in, ref_out, anchors, targets) * upstream).sum().backward()

    assert inp.grad.is_sparse == sparse and out.grad.is_sparse == sparse
    grad_in = inp.grad.to_dense() if sparse else inp.grad
    grad_out = out.grad.to_dense() if sparse else out.grad
    assert grad_in.shape == (V, D) and grad_out.shape == (V, D)
    torch.testing.assert_close(grad_in, ref_in.grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad_out, ref_out.grad, rtol=1e-12, atol=1e-12)
    if sparse:
        torch.testing.assert_close(inp.grad.coalesce().to_dense(), ref_in.grad)


def test_repeated_ids_accumulate():
    # One id used everywhere: its gradient row is the sum over all its occurrences.
    inp, out = tables(seed=3)
    inp.requires_grad_()
    out.requires_grad_()
    anchors = torch.full((3, 2), 4)
    targets = torch.full((3, 5), 1)
    pair_scores(inp, out, anchors, targets, sparse=True).sum().backward()
    dense_in = inp.grad.to_dense()
    # 3 rows x 2 anchor slots, each scored against 5 targets: 30 contributions of out[1].
    torch.testing.assert_close(dense_in[4], 30 * out.detach()[1])
    assert dense_in[[0, 1, 2, 3, 5, 6]].abs().sum() == 0
    torch.testing.assert_close(out.grad.to_dense()[1], 30 * inp.detach()[4])


def test_gradients_accumulate_over_two_backward_calls():
    base_in, base_out = tables(seed=4)
    anchors, targets = ids("repeated")
    inp, out = base_in.clone().requires_grad_(), base_out.clone().requires_grad_()
    for _ in range(2):
        pair_scores(inp, out, anchors, targets, sparse=True).sum().backward()
    ref_in, ref_out = base_in.clone().requires_grad_(), base_out.clone().requires_grad_()
    (2 * reference(ref_in, ref_out, anchors, targets).sum()).backward()
    torch.testing.assert_close(inp.grad.to_dense(), ref_in.grad)
    torch.testing.assert_close(out.grad.to_dense(), ref_out.grad)


@pytest.mark.parametrize("sparse", [True, False])
def test_only_the_table_that_requires_grad_gets_one(sparse: bool):
    base_in, base_out = tables(seed=5)
    anchors, targets = ids("distinct")
    inp = base_in.clone().requires_grad_()
    pair_scores(inp, base_out, anchors, targets, sparse=sparse).sum().backward()
    ref_in = base_in.clone().requires_grad_()
    reference(ref_in, base_out, anchors, targets).sum().backward()
    assert base_out.grad is None
    grad = inp.grad.to_dense() if sparse else inp.grad
    torch.testing.assert_close(grad, ref_in.grad)


def test_gradcheck_dense():
    inp, out = tables(seed=6)
    inp.requires_grad_()
    out.requires_grad_()
    anchors, targets = ids("repeated")
    assert torch.autograd.gradcheck(
        lambda a, b: pair_scores(a, b, anchors, targets, sparse=False), (inp, out)
    )


# -------------------------------------------------------------------------- SkipGramEmbeddings
@pytest.mark.parametrize("dim", [1, 3, 50])
def test_skipgram_embeddings_init(dim: int):
    torch.manual_seed(0)
    model = SkipGramEmbeddings(vocab_size=200, dim=dim)
    weight = model.input.weight.detach()
    bound = 0.5 / dim
    assert weight.shape == (200, dim)
    assert (weight >= -bound).all() and (weight < bound).all()
    assert weight.abs().max() > 0.5 * bound  # actually spread over the interval
    assert torch.equal(model.output.weight.detach(), torch.zeros(200, dim))
    assert model.vocab_size == 200 and model.dim == dim
    assert torch.equal(model.vectors(), weight)
    assert not model.vectors().requires_grad


def test_skipgram_embeddings_init_is_seeded():
    torch.manual_seed(1)
    a = SkipGramEmbeddings(10, 4).vectors()
    torch.manual_seed(1)
    b = SkipGramEmbeddings(10, 4).vectors()
    assert torch.equal(a, b)


@pytest.mark.parametrize("sparse", [True, False])
def test_skipgram_embeddings_forward_and_grad_layout(sparse: bool):
    torch.manual_seed(2)
    model = SkipGramEmbeddings(V, D, sparse=sparse)
    with torch.no_grad():
        model.output.weight.normal_()
    anchors, targets = ids("repeated")
    scores = model(anchors, targets)
    torch.testing.assert_close(
        scores, reference(model.input.weight, model.output.weight, anchors, targets)
    )
    scores.sum().backward()
    assert model.input.weight.grad.is_sparse == sparse
    assert model.output.weight.grad.is_sparse == sparse


@pytest.mark.parametrize("kwargs", [{"vocab_size": 0, "dim": 4}, {"vocab_size": -3, "dim": 4}])
def test_bad_vocab_size_raises(kwargs):
    with pytest.raises(ValueError, match="vocab_size"):
        SkipGramEmbeddings(**kwargs)


@pytest.mark.parametrize("dim", [0, -1])
def test_bad_dim_raises(dim: int):
    with pytest.raises(ValueError, match="dim"):
        SkipGramEmbeddings(vocab_size=5, dim=dim)


def test_pair_scores_backward_outside_autocast() -> None:
    w_in = torch.randn(6, 4, requires_grad=True)
    w_out = torch.randn(6, 4, requires_grad=True)
    anchors, targets = torch.randint(0, 6, (3, 2)), torch.randint(0, 6, (3, 3))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        scores = pair_scores(w_in, w_out, anchors, targets, sparse=False)
    scores.float().sum().backward()
    assert w_in.grad is not None and w_in.grad.dtype == torch.float32
