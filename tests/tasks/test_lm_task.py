"""LanguageModelTask: full-softmax perplexity, TBPTT, learning, and the errors it promises."""

from __future__ import annotations

import math

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from nslightning.data import LanguageModelDataModule
from nslightning.deprecation import NSLightningDeprecationWarning
from nslightning.samplers import InBatchSampler, UniformSampler
from nslightning.tasks import LanguageModelTask
from tests.corpora import data_for, pattern_text


def trainer(**options) -> pl.Trainer:
    settings = dict(
        accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, max_epochs=1,
    )
    settings.update(options)
    return pl.Trainer(**settings)


def task_for(data: LanguageModelDataModule, **options) -> LanguageModelTask:
    settings = dict(dim=16, hidden_size=16, num_layers=1, dropout=0.0,
                    num_negatives=3, lr=0.01)
    settings.update(options)
    return LanguageModelTask(vocab_size=data.vocab_size, **settings)


def hand_perplexity(task: LanguageModelTask, data: LanguageModelDataModule, split: str) -> float:
    """exp(mean token NLL): the split's windows in order, state carried, full softmax."""
    loader = {"val": data.val_dataloader, "test": data.test_dataloader}[split]()
    task.eval()
    total, count, hidden = 0.0, 0, None
    with torch.no_grad():
        for window in loader:
            features, hidden = task.model(window.inputs, hidden)
            logits = features @ task.model.output_weight.T + task.model.output_bias
            log_p = torch.log_softmax(logits.double(), dim=-1)
            total -= float(log_p.gather(-1, window.targets.unsqueeze(-1)).sum())
            count += window.targets.numel()
    return math.exp(total / count)


def unigram_perplexity(data: LanguageModelDataModule, split: str) -> float:
    probabilities = data.counts.double() / data.counts.sum()
    targets = torch.from_numpy(data.ids(split).astype("int64"))
    return math.exp(-float(probabilities[targets].log().mean()))


def test_test_perplexity_is_exp_of_the_mean_token_nll(tmp_path):
    pl.seed_everything(0)
    data = data_for(pattern_text(tmp_path / "text.txt"))
    task = task_for(data, output="full")
    run = trainer(max_steps=5)
    run.fit(task, datamodule=data)
    logged = run.test(task, datamodule=data, verbose=False)[0]
    expected = hand_perplexity(task, data, "test")
    assert logged["test/ppl"] == pytest.approx(expected, rel=1e-4)
    assert logged["test/loss"] == pytest.approx(math.log(expected), rel=1e-4)


@pytest.mark.parametrize("output", ["full", "sampled_softmax"])
def test_a_one_layer_lstm_beats_the_unigram_perplexity(tmp_path, output):
    pl.seed_everything(0)
    data = data_for(pattern_text(tmp_path / "text.txt", lines=120), batch_size=8)
    task = task_for(data, output=output, bias_init="zeros", lr=0.02)
    run = trainer(max_epochs=6)
    run.fit(task, datamodule=data)
    ppl = run.test(task, datamodule=data, verbose=False)[0]["test/ppl"]
    assert ppl < 0.5 * unigram_perplexity(data, "test")


class RecordingModel(torch.nn.Module):
    """Wraps the LSTM model and records the state each window starts from."""

    def __init__(self, model):
        super().__init__()
        self.inner = model
        self.seen = []

    def forward(self, tokens, hidden=None):
        self.seen.append(hidden)
        return self.inner(tokens, hidden)

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.inner, name)


def test_tbptt_carries_a_detached_state_and_resets_it_each_epoch(tmp_path):
    pl.seed_everything(0)
    data = data_for(pattern_text(tmp_path / "text.txt"))
    task = task_for(data, output="full")
    recorder = RecordingModel(task.model)
    task.model = recorder  # type: ignore[assignment]
    windows = len(data.train_dataloader())
    validation = len(data.val_dataloader())
    run = trainer(max_epochs=2)
    run.fit(task, datamodule=data)
    per_epoch = windows + validation
    assert len(recorder.seen) == 2 * per_epoch
    for epoch in range(2):
        seen = recorder.seen[epoch * per_epoch : (epoch + 1) * per_epoch]
        training, evaluation = seen[:windows], seen[windows:]
        assert training[0] is None and evaluation[0] is None
        assert all(h is not None and not h[0].requires_grad for h in training[1:])
        assert all(h is not None for h in evaluation[1:])


def test_carried_state_gives_the_same_outputs_as_one_long_pass(tmp_path):
    pl.seed_everything(0)
    data = data_for(pattern_text(tmp_path / "text.txt"))
    task = task_for(data)
    task.eval()
    windows = list(data.test_dataloader())
    with torch.no_grad():
        hidden, parts = None, []
        for window in windows:
            features, hidden = task.model(window.inputs, hidden)
            parts.append(features)
        whole, _ = task.model(torch.cat([w.inputs for w in windows], dim=1))
    torch.testing.assert_close(torch.cat(parts, dim=1), whole)


@pytest.mark.parametrize(
    "options",
    [
        {"output": "full"},
        {"output": "sampled_softmax"},
        {"output": "negative_sampling"},
        {"output": "nce"},
        {"output": "sampled_softmax", "shared_negatives": False},
        {"output": "nce", "sampler": UniformSampler(), "shared_negatives": False},
        {"output": "sampled_softmax", "sampler": InBatchSampler(), "shared_negatives": False},
        {"output": "negative_sampling", "sampler": InBatchSampler(), "shared_negatives": False},
    ],
)
def test_every_objective_trains_and_lowers_the_validation_perplexity(tmp_path, options):
    pl.seed_everything(0)
    data = data_for(pattern_text(tmp_path / "text.txt", lines=120), batch_size=8)
    task = task_for(data, lr=0.03, **options)
    before = trainer().validate(task, datamodule=data, verbose=False)[0]["val/ppl"]
    run = trainer(max_epochs=4)
    run.fit(task, datamodule=data)
    after = float(run.callback_metrics["val/ppl"])
    assert math.isfinite(after)
    assert after < 0.8 * before


def test_same_seed_same_perplexity(tmp_path):
    text = pattern_text(tmp_path / "text.txt")
    results = []
    for _ in range(2):
        pl.seed_everything(3)
        data = data_for(text)
        run = trainer(max_epochs=1)
        run.fit(task_for(data), datamodule=data)
        results.append(float(run.callback_metrics["val/ppl"]))
    assert results[0] == results[1]


def test_log_unigram_bias_start_and_no_reset_on_a_second_fit(tmp_path):
    pl.seed_everything(0)
    data = data_for(pattern_text(tmp_path / "text.txt"))
    task = task_for(data, output="full")
    run = trainer(max_steps=1, limit_val_batches=0)
    run.fit(task, datamodule=data)
    smoothed = data.counts.double() + 1
    start = (smoothed / smoothed.sum()).log().float()
    # one Adam step moves each bias by at most about lr
    assert torch.allclose(task.model.output_bias.detach(), start, atol=0.02)
    trained = task.model.output_bias.detach().clone() + 0.5
    with torch.no_grad():
        task.model.output_bias.copy_(trained)
    trainer(max_steps=1, limit_val_batches=0).fit(task, datamodule=data)
    assert torch.allclose(task.model.output_bias.detach(), trained, atol=0.02)
    zeros = task_for(data, output="full", bias_init="zeros", lr=1e-9)
    trainer(max_steps=1, limit_val_batches=0).fit(zeros, datamodule=data)
    assert zeros.model.output_bias.detach().abs().max() < 1e-6


def test_k_not_below_the_vocabulary_is_a_clear_error(tmp_path):
    data = data_for(pattern_text(tmp_path / "text.txt"))
    with pytest.raises(ValueError, match="not below the vocabulary size"):
        task_for(data, num_negatives=data.vocab_size)
    task_for(data, num_negatives=data.vocab_size, output="full")  # no candidates: fine


def test_text_shorter_than_one_window_is_a_clear_error(tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("a b c\nd e f\ng h i\n", encoding="utf-8")
    data = data_for(path, bptt=35, batch_size=1, eval_batch_size=1)
    with pytest.raises(ValueError, match="shorter than one bptt window"):
        data.train_dataloader()


def test_checkpoint_with_another_vocabulary_is_refused(tmp_path):
    pl.seed_everything(0)
    text_a = pattern_text(tmp_path / "a.txt")
    data_a = data_for(text_a)
    task = task_for(data_a, output="full")
    run = trainer(max_steps=2, limit_val_batches=0)
    run.fit(task, datamodule=data_a)
    checkpoint = tmp_path / "a.ckpt"
    run.save_checkpoint(checkpoint)

    # same size, other tokens
    text_b = pattern_text(tmp_path / "b.txt", words="klmnopqrst")
    data_b = data_for(text_b)
    assert data_b.vocab_size == data_a.vocab_size
    with pytest.raises(ValueError, match="another vocabulary"):
        trainer().test(task_for(data_b, output="full"), datamodule=data_b, ckpt_path=checkpoint)

    # another size
    text_c = pattern_text(tmp_path / "c.txt", words="abcdefghijklm")
    data_c = data_for(text_c)
    assert data_c.vocab_size != data_a.vocab_size
    with pytest.raises(ValueError, match="size mismatch"):
        trainer().test(task_for(data_c, output="full"), datamodule=data_c, ckpt_path=checkpoint)


def test_model_and_data_of_different_sizes_are_refused(tmp_path):
    data = data_for(pattern_text(tmp_path / "text.txt"))
    task = LanguageModelTask(vocab_size=data.vocab_size + 5, dim=8, hidden_size=8,
                             num_negatives=3)
    with pytest.raises(ValueError, match="size mismatch"):
        trainer(max_steps=1).fit(task, datamodule=data)


def test_the_loss_of_full_is_the_cross_entropy_of_the_batch(tmp_path):
    data = data_for(pattern_text(tmp_path / "text.txt"))
    task = task_for(data, output="full")
    window = next(iter(data.train_dataloader()))
    task.eval()
    features, _ = task.model(window.inputs)
    flat = features.reshape(-1, features.shape[-1])
    expected = F.cross_entropy(task.model.logits(flat), window.targets.reshape(-1))
    torch.testing.assert_close(task.output(task.model, flat, window.targets.reshape(-1)), expected)


def test_embedding_dim_and_remove_accidental_hits_are_deprecated_spellings() -> None:
    settings = dict(hidden_size=8, num_layers=1, num_negatives=4)
    with pytest.warns(NSLightningDeprecationWarning, match="use dim") as record:
        task = LanguageModelTask(50, embedding_dim=8, **settings)
    assert task.model.embedding.weight.shape == (50, 8)
    assert record[0].filename == __file__  # the warning points at the caller's line
    with pytest.warns(NSLightningDeprecationWarning, match="accidental_hits='keep'") as record:
        task = LanguageModelTask(50, dim=8, output="nce", remove_accidental_hits=False, **settings)
    assert task.output.accidental_hits == "keep" and record[0].filename == __file__
    with pytest.warns(NSLightningDeprecationWarning, match="accidental_hits='positive'"):
        task = LanguageModelTask(50, dim=8, output="nce", remove_accidental_hits=True, **settings)
    assert task.output.accidental_hits == "positive"
