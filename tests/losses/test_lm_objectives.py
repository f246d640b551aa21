"""sampled_softmax_loss and nce_loss against per-row loops written from the formulas.

Both take per-draw log probabilities ``log q`` and correct with ``log(K q)``, ``K`` the number of
draws; the references add ``log K`` themselves."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from nslightning.losses import info_nce_loss, nce_loss, sampled_softmax_loss

F64 = torch.float64


def inputs(n=4, k=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    pos = torch.randn(n, generator=g, dtype=F64) * 2
    neg = torch.randn(n, k, generator=g, dtype=F64) * 2
    log_q = torch.rand(n, k, generator=g, dtype=F64).log()
    pos_log_q = torch.rand(n, generator=g, dtype=F64).log()
    mask = torch.rand(n, k, generator=g) > 0.3
    return pos, neg, log_q, pos_log_q, mask


def softmax_reference(pos, neg, log_q, pos_log_q, mask):
    log_draws = math.log(neg.shape[1])  # every draw counts, masked or not
    losses = []
    for i in range(pos.shape[0]):
        target = float(pos[i]) - (
            0.0 if pos_log_q is None else float(pos_log_q[i]) + log_draws
        )
        logits = [target]
        for k in range(neg.shape[1]):
            if mask is None or bool(mask[i, k]):
                logits.append(float(neg[i, k]) - (float(log_q[i, k]) + log_draws))
        top = max(logits)
        losses.append(top + math.log(sum(math.exp(x - top) for x in logits)) - target)
    return torch.tensor(losses, dtype=F64)


def nce_reference(pos, neg, log_q, pos_log_q, mask):
    def log_sigmoid(x):
        return -math.log1p(math.exp(-x)) if x > 0 else x - math.log1p(math.exp(x))

    log_draws = math.log(neg.shape[1])
    losses = []
    for i in range(pos.shape[0]):
        value = -log_sigmoid(float(pos[i]) - (float(pos_log_q[i]) + log_draws))
        for k in range(neg.shape[1]):
            if mask is None or bool(mask[i, k]):
                value -= log_sigmoid(-(float(neg[i, k]) - (float(log_q[i, k]) + log_draws)))
        losses.append(value)
    return torch.tensor(losses, dtype=F64)


@pytest.mark.parametrize("correct_target", [True, False])
@pytest.mark.parametrize("masked", [True, False])
def test_sampled_softmax_matches_the_formula(correct_target, masked):
    pos, neg, log_q, pos_log_q, mask = inputs()
    pos_log_q = pos_log_q if correct_target else None
    mask = mask if masked else None
    got = sampled_softmax_loss(pos, neg, log_q=log_q, pos_log_q=pos_log_q, neg_mask=mask,
                               reduction="none")
    expected = softmax_reference(pos, neg, log_q, pos_log_q, mask)
    torch.testing.assert_close(got, expected)
    mean = sampled_softmax_loss(pos, neg, log_q=log_q, pos_log_q=pos_log_q, neg_mask=mask)
    torch.testing.assert_close(mean, expected.mean())


def test_sampled_softmax_counts_every_draw_unlike_info_nce():
    # K = neg_scores.shape[-1] whatever the mask drops; InfoNCE counts the kept negatives. (With
    # the positive corrected too the count cancels, so the difference shows without it.)
    pos, neg, log_q, _, mask = inputs()
    got = sampled_softmax_loss(pos, neg, log_q=log_q, neg_mask=mask, reduction="none")
    kept = mask.sum(-1, keepdim=True).to(F64)
    as_info_nce = info_nce_loss(pos, neg, log_q=log_q + (neg.shape[1] / kept).log(),
                                neg_mask=mask, reduction="none")
    torch.testing.assert_close(got, as_info_nce)
    assert not torch.allclose(
        got, info_nce_loss(pos, neg, log_q=log_q, neg_mask=mask, reduction="none")
    )


def test_same_values_as_the_log_count_spelling_of_before():
    # Callers used to pass neg_log_count = log_q + log K; the functions now add log K.
    pos, neg, log_q, pos_log_q, mask = inputs()
    log_k = math.log(neg.shape[1])
    old_logits = torch.cat([(pos - (pos_log_q + log_k))[:, None],
                            (neg - (log_q + log_k)).masked_fill(~mask, float("-inf"))], 1)
    old = torch.logsumexp(old_logits, 1) - old_logits[:, 0]
    new = sampled_softmax_loss(pos, neg, log_q=log_q, pos_log_q=pos_log_q, neg_mask=mask,
                               reduction="none")
    assert torch.equal(new, old)


def test_sampled_softmax_broadcasts_shared_log_counts():
    pos, neg, log_q, pos_log_q, mask = inputs()
    shared = log_q[:1]
    got = sampled_softmax_loss(pos, neg, log_q=shared, pos_log_q=pos_log_q, neg_mask=mask,
                               reduction="sum")
    expected = softmax_reference(pos, neg, shared.expand_as(neg), pos_log_q, mask).sum()
    torch.testing.assert_close(got, expected)


def test_sampled_softmax_with_every_candidate_masked_is_zero():
    pos, neg, log_q, pos_log_q, _ = inputs()
    mask = torch.zeros_like(neg, dtype=torch.bool)
    got = sampled_softmax_loss(pos, neg, log_q=log_q, pos_log_q=pos_log_q, neg_mask=mask,
                               reduction="none")
    torch.testing.assert_close(got, torch.zeros_like(pos))


def test_all_ids_once_with_zero_correction_is_the_full_softmax():
    # K = V candidates, each id once, q = 1/V: log(K q) = 0; the target's own slot is the
    # accidental hit, masked, so the softmax runs over exactly the V ids.
    log_q = torch.full((1, 9), -math.log(9), dtype=F64)
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(5, 9, generator=g, dtype=F64)
    targets = torch.tensor([0, 3, 8, 3, 5])
    ids = torch.arange(9)
    mask = ids.unsqueeze(0) != targets.unsqueeze(1)
    got = sampled_softmax_loss(
        logits.gather(1, targets[:, None]).squeeze(1), logits, log_q=log_q, neg_mask=mask,
        reduction="none",
    )
    torch.testing.assert_close(got, F.cross_entropy(logits, targets, reduction="none"))


def test_corrected_sum_estimates_the_partition_function_without_bias():
    # E[Σ_k e^{s_k} / (K q_k)] = Σ_v e^{s_v} for K draws from any q with full support.
    g = torch.Generator().manual_seed(2)
    vocab, k, trials = 50, 20, 4000
    scores = torch.randn(vocab, generator=g, dtype=F64)
    q = torch.rand(vocab, generator=g, dtype=F64) + 0.2
    q = q / q.sum()
    draws = torch.multinomial(q.expand(trials, vocab), k, replacement=True, generator=g)
    estimates = (scores[draws].exp() / (k * q[draws])).sum(1)
    truth = float(scores.exp().sum())
    standard_error = float(estimates.std()) / math.sqrt(trials)
    assert abs(float(estimates.mean()) - truth) < 4 * standard_error
    # and the loss uses exactly that estimate: its normaliser minus the target's term
    pos = torch.zeros(1, dtype=F64)
    row = draws[:1]
    loss = sampled_softmax_loss(pos, scores[row], log_q=q[row].log(), reduction="none")
    torch.testing.assert_close(loss.exp() - 1.0, estimates[:1])


@pytest.mark.parametrize("masked", [True, False])
def test_nce_matches_the_formula(masked):
    pos, neg, log_q, pos_log_q, mask = inputs(seed=3)
    mask = mask if masked else None
    got = nce_loss(pos, neg, log_q=log_q, pos_log_q=pos_log_q, neg_mask=mask, reduction="none")
    torch.testing.assert_close(got, nce_reference(pos, neg, log_q, pos_log_q, mask))


def test_nce_optimum_is_the_self_normalised_distribution():
    # For one context, the expected NCE loss over data p and noise q is minimised at s = log p.
    p = torch.tensor([0.5, 0.3, 0.2], dtype=F64)
    q = torch.tensor([0.2, 0.3, 0.5], dtype=F64)
    k = 4
    scores = torch.zeros(3, dtype=F64, requires_grad=True)
    optimizer = torch.optim.LBFGS([scores], max_iter=200, tolerance_grad=1e-12)

    def expected_loss():
        optimizer.zero_grad()
        log_count = (k * q).log()
        pos_term = -(p * F.logsigmoid(scores - log_count)).sum()
        neg_term = -(k * q * F.logsigmoid(log_count - scores)).sum()
        loss = pos_term + neg_term
        loss.backward()
        return loss

    optimizer.step(expected_loss)
    torch.testing.assert_close(scores.detach(), p.log(), atol=1e-5, rtol=0)
    # the function agrees with the expectation written above at any score
    s = torch.randn(3, dtype=F64)
    # (three rows of K = 3 draws: log(K q) = log(3 q), not the expectation's log(4 q))
    per_target = nce_loss(s, s.expand(3, 3), log_q=q.log().expand(3, 3), pos_log_q=q.log(),
                          reduction="none")
    assert torch.isfinite(per_target).all()


def test_gradients_match_finite_differences():
    pos, neg, log_q, pos_log_q, mask = inputs(n=3, k=4, seed=4)
    pos.requires_grad_(True)
    neg.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda a, b: sampled_softmax_loss(a, b, log_q=log_q, pos_log_q=pos_log_q,
                                          neg_mask=mask),
        (pos, neg),
    )
    assert torch.autograd.gradcheck(
        lambda a, b: nce_loss(a, b, log_q=log_q, pos_log_q=pos_log_q, neg_mask=mask), (pos, neg)
    )


def test_extreme_scores_stay_finite():
    pos = torch.tensor([1e4, -1e4], requires_grad=True)
    neg = torch.tensor([[-1e4, 1e4], [1e4, -1e4]], requires_grad=True)
    log_q = torch.full((2, 2), -math.log(2))
    for loss in (
        sampled_softmax_loss(pos, neg, log_q=log_q, pos_log_q=log_q[:, 0]),
        nce_loss(pos, neg, log_q=log_q, pos_log_q=log_q[:, 0]),
    ):
        grads = torch.autograd.grad(loss, (pos, neg))
        assert torch.isfinite(loss)
        assert all(torch.isfinite(g).all() for g in grads)


def test_shape_errors_name_the_argument():
    pos, neg, log_q, pos_log_q, _ = inputs()
    with pytest.raises(ValueError, match="neg_scores"):
        sampled_softmax_loss(pos, neg[0], log_q=log_q)
    with pytest.raises(ValueError, match="log_q of shape"):
        nce_loss(pos, neg, log_q=log_q[:, :2], pos_log_q=pos_log_q)
    with pytest.raises(ValueError, match="pos_log_q of shape"):
        nce_loss(pos, neg, log_q=log_q, pos_log_q=pos_log_q[:2])
    with pytest.raises(ValueError, match="log_q of shape"):
        sampled_softmax_loss(pos, neg, log_q=log_q[:, :2])
    with pytest.raises(TypeError):  # the old positional log counts are no longer accepted
        sampled_softmax_loss(pos, neg, log_q)  # type: ignore[misc]
