"""PairEmbeddings' scores by hand, score_all against forward, shared tables, PairScorer."""

from __future__ import annotations

import math

import pytest
import torch

from nslightning.data.known_positives import KnownPositives
from nslightning.models.pair_embeddings import PairEmbeddings, PairScorer

SCORES = ("dot", "cosine", "euclidean")


def model_with(anchor_rows, item_rows, score: str, shared: bool = False) -> PairEmbeddings:
    anchor_weight = torch.tensor(anchor_rows, dtype=torch.float32)
    model = PairEmbeddings(
        anchor_weight.shape[0],
        len(item_rows) if item_rows is not None else anchor_weight.shape[0],
        anchor_weight.shape[1],
        shared=shared,
        score=score,
    )
    with torch.no_grad():
        model.anchor_encoder.weight.copy_(anchor_weight)
        if not shared:
            model.item_encoder.weight.copy_(torch.tensor(item_rows, dtype=torch.float32))
    return model


ANCHORS = [[1.0, 2.0], [0.0, -1.0]]
ITEMS = [[3.0, -1.0], [1.0, 2.0], [0.5, 0.5]]


def hand_score(a, i, score: str) -> float:
    dot = sum(x * y for x, y in zip(a, i, strict=True))
    if score == "dot":
        return dot
    if score == "cosine":
        return dot / (math.hypot(*a) * math.hypot(*i))
    return -math.dist(a, i)


@pytest.mark.parametrize("score", SCORES)
def test_forward_against_a_hand_computation(score: str) -> None:
    model = model_with(ANCHORS, ITEMS, score)
    anchors = torch.tensor([0, 1, 0])
    items = torch.tensor([[0, 1], [2, 0], [2, 2]])
    got = model(anchors, items)
    assert got.shape == (3, 2)
    expected = [
        [hand_score(ANCHORS[a], ITEMS[i], score) for i in row]
        for a, row in zip(anchors.tolist(), items.tolist(), strict=True)
    ]
    torch.testing.assert_close(got, torch.tensor(expected), rtol=1e-5, atol=1e-5)


def test_specific_values() -> None:
    a, i = [[1.0, 2.0]], [[3.0, -1.0]]
    one = torch.tensor([0])
    assert model_with(a, i, "dot")(one, one[:, None]).item() == pytest.approx(1.0)
    cosine = model_with(a, i, "cosine")(one, one[:, None]).item()
    assert cosine == pytest.approx(1 / math.sqrt(50))
    euclidean = model_with(a, i, "euclidean")(one, one[:, None]).item()
    assert euclidean == pytest.approx(-math.sqrt(13))


@pytest.mark.parametrize("score", SCORES)
@pytest.mark.parametrize("shared", [False, True])
def test_score_all_agrees_with_forward(score: str, shared: bool) -> None:
    torch.manual_seed(0)
    model = PairEmbeddings(6, 6, 5, shared=shared, score=score, init_scale=1.0)
    anchors = torch.tensor([3, 0, 5, 3])
    every = model.score_all(anchors)
    assert every.shape == (4, 6) and not every.requires_grad
    items = torch.tensor([4, 1, 1, 0])
    some = model.score_all(anchors, items)
    assert some.shape == (4, 4)
    torch.testing.assert_close(some, every[:, items])
    forward = model(anchors, items.expand(4, 4)).detach()
    torch.testing.assert_close(some, forward, rtol=1e-5, atol=1e-5)
    # Not the same thing with the tables swapped (when they differ).
    if not shared and score == "dot":
        swapped = model.item_encoder.weight[anchors] @ model.anchor_encoder.weight[items].T
        assert not torch.allclose(some, swapped.detach())


def test_shared_tables_are_one_parameter() -> None:
    model = PairEmbeddings(5, 5, 3, shared=True)
    assert model.anchor_encoder is model.item_encoder
    assert len(list(model.parameters())) == 1
    assert model.num_anchors == model.vocab_size == 5
    with torch.no_grad():
        model.anchor_encoder.weight[2] = torch.tensor([1.0, 2.0, 3.0])
    assert model.item_vectors()[2].tolist() == [1.0, 2.0, 3.0]
    separate = PairEmbeddings(4, 6, 3)
    assert separate.anchor_encoder is not separate.item_encoder
    assert len(list(separate.parameters())) == 2
    assert separate.anchor_vectors().shape == (4, 3) and separate.item_vectors().shape == (6, 3)


def test_shared_with_different_sizes_errors() -> None:
    with pytest.raises(ValueError, match=r"one id space.*4 anchors and 6 items"):
        PairEmbeddings(4, 6, 3, shared=True)


def test_argument_errors() -> None:
    with pytest.raises(ValueError, match=r"unknown score .manhattan.: choose one of"):
        PairEmbeddings(4, 4, 3, score="manhattan")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="dim must be"):
        PairEmbeddings(4, 4, 0)
    with pytest.raises(ValueError, match="need >= 1 anchors and items"):
        PairEmbeddings(0, 4, 3)


def test_initialisation_is_within_scale() -> None:
    torch.manual_seed(0)
    model = PairEmbeddings(50, 40, 8, init_scale=0.25)
    for table in (model.anchor_encoder, model.item_encoder):
        weight = table.weight.detach()
        assert weight.abs().max() <= 0.25 and weight.abs().max() > 0.2
    assert not torch.equal(model.anchor_encoder.weight[:40], model.item_encoder.weight)


# ---------------------------------------------------------------- PairScorer
def known_positives() -> KnownPositives:
    return KnownPositives(torch.tensor([0, 0, 2, 3]), torch.tensor([1, 4, 0, 3]), 4, 5)


def test_scorer_call_sets_known_positives_to_minus_inf() -> None:
    torch.manual_seed(1)
    model = PairEmbeddings(4, 5, 3, score="dot", init_scale=1.0)
    known = known_positives()
    scorer = PairScorer(model, known.contains)
    anchors = torch.tensor([0, 2, 3, 1])
    candidates = torch.tensor([[1, 2, 4], [0, 0, 1], [3, 2, 1], [1, 4, 0]])
    got = scorer(anchors, candidates)
    assert not got.requires_grad
    plain = model(anchors, candidates).detach()
    mask = torch.tensor(
        [[True, False, True], [True, True, False], [True, False, False], [False] * 3]
    )
    assert torch.equal(torch.isneginf(got), mask)
    torch.testing.assert_close(got[~mask], plain[~mask])
    # Without is_known the scores are the model's.
    torch.testing.assert_close(PairScorer(model)(anchors, candidates), plain)


def test_scorer_mine_sets_known_positives_to_minus_inf() -> None:
    torch.manual_seed(2)
    model = PairEmbeddings(4, 5, 3, score="cosine", init_scale=1.0)
    scorer = PairScorer(model, known_positives().contains)
    anchors = torch.tensor([0, 1, 2, 3])
    items = torch.tensor([0, 1, 3, 4])
    got = scorer.mine(anchors, items)
    plain = model.score_all(anchors, items)
    known = {(0, 1), (0, 4), (2, 0), (3, 3)}
    mask = torch.tensor([[(a, i) in known for i in items.tolist()] for a in anchors.tolist()])
    assert mask.sum() == 4
    assert torch.equal(torch.isneginf(got), mask)
    torch.testing.assert_close(got[~mask], plain[~mask])
    torch.testing.assert_close(PairScorer(model).mine(anchors, items), plain)


# ---------------------------------------------------------------- gradients
@pytest.mark.parametrize("score", SCORES)
def test_gradients_flow_to_the_used_rows(score: str) -> None:
    torch.manual_seed(3)
    model = PairEmbeddings(5, 6, 4, score=score, init_scale=1.0)
    model(torch.tensor([1, 3]), torch.tensor([[0, 2], [2, 5]])).sum().backward()
    anchor_grad = model.anchor_encoder.weight.grad
    item_grad = model.item_encoder.weight.grad
    assert anchor_grad is not None and item_grad is not None
    used_anchors, used_items = {1, 3}, {0, 2, 5}
    for row in range(5):
        assert bool(anchor_grad[row].abs().sum() > 0) == (row in used_anchors)
    for row in range(6):
        assert bool(item_grad[row].abs().sum() > 0) == (row in used_items)


def test_dot_gradient_is_the_other_vector() -> None:
    model = model_with(ANCHORS, ITEMS, "dot")
    model(torch.tensor([0]), torch.tensor([[1, 2]])).sum().backward()
    torch.testing.assert_close(
        model.anchor_encoder.weight.grad[0], torch.tensor(ITEMS[1]) + torch.tensor(ITEMS[2])
    )
    torch.testing.assert_close(model.item_encoder.weight.grad[2], torch.tensor(ANCHORS[0]))


def test_shared_gradient_accumulates_both_sides() -> None:
    model = model_with([*ANCHORS, [0.5, 0.5]], None, "dot", shared=True)
    model(torch.tensor([0]), torch.tensor([[1]])).sum().backward()
    grad = model.anchor_encoder.weight.grad
    torch.testing.assert_close(grad[0], torch.tensor(ANCHORS[1]))
    torch.testing.assert_close(grad[1], torch.tensor(ANCHORS[0]))
    assert grad[2].abs().sum() == 0


def test_sparse_gradients() -> None:
    model = PairEmbeddings(5, 6, 4, sparse=True)
    model(torch.tensor([1]), torch.tensor([[0, 2]])).sum().backward()
    assert model.anchor_encoder.weight.grad.is_sparse
    assert model.item_encoder.weight.grad.is_sparse


def test_euclidean_gradient_is_finite_when_anchor_equals_item() -> None:
    shared = PairEmbeddings(3, 3, 4, shared=True, score="euclidean")
    score = shared(torch.tensor([1, 1]), torch.tensor([[1, 0], [1, 1]]))
    assert score[0, 0].item() == pytest.approx(0.0, abs=1e-5)
    score.sum().backward()
    assert torch.isfinite(shared.anchor_encoder.weight.grad).all()
    separate = model_with([[1.0, 2.0]], [[1.0, 2.0]], "euclidean")
    score = separate(torch.tensor([0]), torch.tensor([[0]]))
    assert score.item() == pytest.approx(0.0, abs=1e-5)
    score.sum().backward()
    for grad in (separate.anchor_encoder.weight.grad, separate.item_encoder.weight.grad):
        assert torch.isfinite(grad).all()
        assert torch.equal(grad, torch.zeros_like(grad))


def test_cosine_of_a_zero_vector_is_finite() -> None:
    model = model_with([[0.0, 0.0]], [[1.0, 2.0]], "cosine")
    score = model(torch.tensor([0]), torch.tensor([[0]]))
    assert score.item() == 0.0
    score.sum().backward()
    assert torch.isfinite(model.anchor_encoder.weight.grad).all()
