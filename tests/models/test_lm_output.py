"""LSTMLanguageModel and SampledOutput against references built from the full logits."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

import nslightning.models.language_model as language_model
from nslightning.losses import SampledSoftmaxLoss
from nslightning.models import LSTMLanguageModel, SampledOutput
from nslightning.samplers import (
    HardNegativeSampler,
    InBatchSampler,
    LogUniformSampler,
    UniformSampler,
    UnigramSampler,
)
from nslightning.tasks import LanguageModelTask

V, D, N = 30, 8, 12


def model_and_batch(tie: bool = True, seed: int = 0):
    torch.manual_seed(seed)
    model = LSTMLanguageModel(V, dim=D, hidden_size=D, num_layers=1, dropout=0.0,
                              tie_weights=tie)
    with torch.no_grad():
        model.output_bias.normal_()
    features = torch.randn(N, D)
    targets = torch.randint(0, 5, (N,))  # frequent ids, so that hits happen
    return model, features, targets


def counts() -> torch.Tensor:
    return torch.arange(V, 0, -1).double() ** 2


def test_tied_weights_share_one_parameter_and_projection_fits_a_larger_state():
    model = LSTMLanguageModel(V, dim=D, hidden_size=2 * D, num_layers=2)
    assert model.tied and model.output_weight is model.embedding.weight
    assert model.lstm.proj_size == D
    features, (h, c) = model(torch.randint(0, V, (3, 5)))
    assert features.shape == (3, 5, D) and h.shape == (2, 3, D) and c.shape == (2, 3, 2 * D)
    assert len(list(model.parameters())) == len({id(p) for p in model.parameters()})
    with pytest.raises(ValueError, match="hidden_size"):
        LSTMLanguageModel(V, dim=16, hidden_size=8)
    untied = LSTMLanguageModel(V, dim=16, hidden_size=8, tie_weights=False)
    assert untied.output_weight.shape == (V, 8) and untied.lstm.proj_size == 0


def test_scores_and_nll_agree_with_the_full_logits(monkeypatch):
    model, features, targets = model_and_batch(tie=False)
    logits = features @ model.output_weight.T + model.output_bias
    torch.testing.assert_close(model.logits(features), logits)
    shared = torch.tensor([3, 0, 7, 7])
    torch.testing.assert_close(model.score(features, shared), logits[:, shared])
    per_row = torch.randint(0, V, (N, 4))
    torch.testing.assert_close(model.score(features, per_row), logits.gather(1, per_row))
    expected = F.cross_entropy(logits, targets, reduction="none")
    torch.testing.assert_close(model.nll(features, targets), expected)
    monkeypatch.setattr(language_model, "EVAL_CHUNK_ELEMENTS", 2 * V)  # chunks of 2 rows
    torch.testing.assert_close(model.nll(features, targets), expected)


def reference(objective, logits, targets, ids, log_q, keep, pos_log_q):
    """Per-row loop over the candidates, from the objective's formula."""
    k = ids.shape[-1]
    total = 0.0
    for i in range(logits.shape[0]):
        row_ids = ids if ids.dim() == 1 else ids[i]
        row_log_q = log_q[0] if log_q.shape[0] == 1 else log_q[i]
        s_t = float(logits[i, targets[i]])
        kept = [j for j in range(k) if keep(i, int(row_ids[j]))]
        if objective == "negative_sampling":
            value = math.log1p(math.exp(-s_t))
            value += sum(math.log1p(math.exp(float(logits[i, row_ids[j]]))) for j in kept)
        elif objective == "nce":
            z_t = s_t - (float(pos_log_q[i]) + math.log(k))
            value = math.log1p(math.exp(-z_t))
            for j in kept:
                z = float(logits[i, row_ids[j]]) - (float(row_log_q[j]) + math.log(k))
                value += math.log1p(math.exp(z))
        else:
            z_t = s_t - (0.0 if pos_log_q is None else float(pos_log_q[i]) + math.log(k))
            zs = [z_t] + [
                float(logits[i, row_ids[j]]) - (float(row_log_q[j]) + math.log(k)) for j in kept
            ]
            value = math.log(sum(math.exp(z) for z in zs)) - z_t
        total += value
    return total / logits.shape[0]


@pytest.mark.parametrize("objective", ["sampled_softmax", "negative_sampling", "nce"])
@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("sampler_class", [LogUniformSampler, UniformSampler, UnigramSampler])
def test_objectives_match_the_reference(objective, shared, sampler_class):
    model, features, targets = model_and_batch()
    sampler = sampler_class(seed=5)
    sampler.setup(counts())
    output = SampledOutput(objective, num_negatives=6, shared_negatives=shared)
    twin = copy.deepcopy(sampler)
    loss = output(model, features, targets, sampler)
    if shared:
        drawn = twin.sample(targets[:1], 6)
        ids, log_q = drawn.ids[0], drawn.log_q
    else:
        drawn = twin.sample(targets, 6)
        ids, log_q = drawn.ids, drawn.log_q
    probabilities = counts() if sampler_class is UnigramSampler else None
    pos_log_q = twin.log_prob(targets[:, None], targets).squeeze(1)
    if probabilities is not None:  # the table is counts^0.75, independently of the sampler
        p = probabilities ** 0.75
        torch.testing.assert_close(pos_log_q, (p / p.sum()).log()[targets].float())
    remove_hits = objective != "nce"

    def keep(i, candidate):
        return not (remove_hits and candidate == int(targets[i]))

    logits = model.logits(features).detach()
    expected = reference(objective, logits, targets, ids, log_q, keep, pos_log_q)
    assert float(loss) == pytest.approx(expected, rel=1e-4)


def test_nce_removes_hits_when_asked_and_hits_do_occur():
    model, features, targets = model_and_batch()
    sampler = LogUniformSampler(seed=1)
    sampler.setup(counts())
    kept = SampledOutput("nce", 20)(model, features, targets, copy.deepcopy(sampler))
    removed = SampledOutput("nce", 20, accidental_hits="positive")(
        model, features, targets, copy.deepcopy(sampler)
    )
    assert float(removed) < float(kept)  # removing positive terms of the sum


def test_in_batch_candidates_per_token_leave_the_target_uncorrected():
    model, features, targets = model_and_batch()
    sampler = InBatchSampler(seed=2)
    sampler.setup(counts())
    output = SampledOutput("sampled_softmax", 5, shared_negatives=False)
    twin = copy.deepcopy(sampler)
    loss = output(model, features, targets, sampler)
    drawn = twin.sample(targets, 5)
    logits = model.logits(features).detach()
    mask = drawn.mask

    def keep_row(i, j):
        return bool(mask[i, j])

    total = 0.0
    for i in range(N):
        zs = [float(logits[i, targets[i]])]
        zs += [
            float(logits[i, drawn.ids[i, j]]) - float(drawn.log_q[i, j]) - math.log(5)
            for j in range(5) if keep_row(i, j)
        ]
        total += math.log(sum(math.exp(z) for z in zs)) - zs[0]
    assert float(loss) == pytest.approx(total / N, rel=1e-4)


def test_full_is_the_cross_entropy_and_gradients_reach_only_drawn_rows():
    model, features, targets = model_and_batch(tie=False)
    full = SampledOutput("full")
    torch.testing.assert_close(
        full(model, features, targets), F.cross_entropy(model.logits(features), targets)
    )
    sampler = UniformSampler(seed=3)
    sampler.setup(counts())
    output = SampledOutput("sampled_softmax", 4)
    output(model, features, targets, copy.deepcopy(sampler)).backward()
    touched = set(targets.tolist()) | set(sampler.sample(targets[:1], 4).ids[0].tolist())
    rows = model.output_weight.grad.abs().sum(1) > 0
    assert set(torch.nonzero(rows).squeeze(1).tolist()) <= touched
    assert rows.any()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sampler": HardNegativeSampler(UniformSampler())}, "LSTM states"),
        ({"sampler": UniformSampler(unique=True)}, "without unique or redraw"),
        ({"sampler": UniformSampler(redraw=True)}, "without unique or redraw"),
        ({"sampler": InBatchSampler()}, "shared_negatives false"),
        ({"sampler": InBatchSampler(), "shared_negatives": False, "output": "nce"},
         "fixed noise distribution"),
        ({"sampler": InBatchSampler(), "shared_negatives": False, "accidental_hits": "keep"},
         "empty slots"),
        ({"num_negatives": 0}, "num_negatives"),
        ({"output": "softmax"}, "output must be one of"),
        ({"output": "nce", "loss": SampledSoftmaxLoss()}, "not both"),
    ],
)
def test_unfit_settings_are_clear_errors(kwargs, message):
    """The language model refuses what its sampler's declared capabilities cannot serve."""
    settings = {"dim": D, "hidden_size": D, "num_layers": 1, "num_negatives": 6, **kwargs}
    with pytest.raises(ValueError, match=message):
        LanguageModelTask(V, **settings)


def test_unique_draws_are_corrected_with_their_inclusion_probability():
    """TensorFlow's unique=True convention: sampled softmax subtracts log π (the expected count
    of a candidate drawn without repeats), not log(K π)."""
    model, features, targets = model_and_batch()
    sampler = UnigramSampler(seed=6, unique=True)
    sampler.setup(counts())
    assert sampler.log_q_kind == "inclusion" and not sampler.fixed_distribution
    loss = SampledOutput("sampled_softmax", 5, shared_negatives=False)(
        model, features, targets, copy.deepcopy(sampler)
    )
    drawn = sampler.sample(targets, 5)
    logits = model.logits(features).detach()
    total = 0.0
    for i in range(N):
        zs = [float(logits[i, targets[i]])]  # no fixed distribution: the target uncorrected
        zs += [
            float(logits[i, drawn.ids[i, j]]) - float(drawn.log_q[i, j])
            for j in range(5) if bool(drawn.mask[i, j])
        ]
        total += math.log(sum(math.exp(z) for z in zs)) - zs[0]
    assert float(loss) == pytest.approx(total / N, rel=1e-4)


def test_k_must_stay_below_the_vocabulary():
    with pytest.raises(ValueError, match="not below the vocabulary size"):
        SampledOutput("nce", 30).check_vocabulary(30)
    SampledOutput("full", 30).check_vocabulary(30)
