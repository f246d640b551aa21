"""Regression tests for behaviours fixed after review: each failed before its fix."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from nslightning.cli import main
from nslightning.data import SkipGramDataModule, Vocabulary, skipgrams
from nslightning.losses import sgns_loss
from nslightning.models.pair_scores import pair_scores
from nslightning.samplers import UnigramSampler
from nslightning.tasks import SkipGramTask
from tests.test_cli import tiny_args


def test_sampler_state_survives_a_save_before_any_draw() -> None:
    used = UnigramSampler(seed=3)
    used.setup(torch.arange(1.0, 11.0))
    used.sample(torch.zeros(5, dtype=torch.long), 2)
    first = UnigramSampler()
    first.load_state_dict(used.state_dict())
    second = UnigramSampler()
    second.load_state_dict(first.state_dict())  # saved again before drawing
    positives = torch.zeros(7, dtype=torch.long)
    assert torch.equal(used.sample(positives, 3).ids, second.sample(positives, 3).ids)


def test_sampler_on_another_device_is_a_clear_error() -> None:
    sampler = UnigramSampler()
    sampler.setup(torch.ones(4))
    with pytest.raises(RuntimeError, match=r"tables are on cpu.*\.to\(device\)"):
        sampler.sample(torch.zeros(3, dtype=torch.long, device="meta"), 2)


def test_sgns_loss_rejects_masks_that_would_broadcast_the_loss() -> None:
    with pytest.raises(ValueError, match="weight of shape"):
        sgns_loss(torch.zeros(3), torch.zeros(3, 2), weight=torch.ones(3, 1))
    with pytest.raises(ValueError, match="neg_mask of shape"):
        sgns_loss(torch.zeros(3), torch.zeros(3, 2), torch.ones(3, 1, 2, dtype=torch.bool))


def test_pair_scores_backward_outside_autocast() -> None:
    w_in = torch.randn(6, 4, requires_grad=True)
    w_out = torch.randn(6, 4, requires_grad=True)
    anchors, targets = torch.randint(0, 6, (3, 2)), torch.randint(0, 6, (3, 3))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        scores = pair_scores(w_in, w_out, anchors, targets, sparse=False)
    scores.float().sum().backward()
    assert w_in.grad is not None and w_in.grad.dtype == torch.float32


def test_keras_skipgrams_leave_the_callers_sampler_untouched() -> None:
    def fresh() -> UnigramSampler:
        sampler = UnigramSampler(seed=11)
        sampler.setup(torch.tensor([0.0, 5, 4, 3, 2, 1]))
        return sampler

    used, twin = fresh(), fresh()
    positives = torch.ones(9, dtype=torch.long)
    used.sample(positives, 2), twin.sample(positives, 2)
    skipgrams([1, 2, 3, 4, 5, 1, 2], 6, seed=0, sampler=used)
    assert used.seed == 11
    assert torch.equal(used.sample(positives, 4).ids, twin.sample(positives, 4).ids)


def test_window_stream_is_not_the_sampler_stream(topic_corpus_file: Path) -> None:
    data = SkipGramDataModule(str(topic_corpus_file), min_count=1, seed=0)
    data.setup("fit")
    chunk = next(iter(data.train_dataloader()))
    data.on_after_batch_transfer(chunk, 0)
    window_stream = data._stream.generator(torch.device("cpu"))
    sampler_stream = UnigramSampler(seed=0).stream.generator(torch.device("cpu"))
    assert not torch.equal(torch.rand(8, generator=window_stream),
                           torch.rand(8, generator=sampler_stream))


def test_datamodule_state_continues_the_window_stream(topic_corpus_file: Path) -> None:
    def data_module() -> SkipGramDataModule:
        data = SkipGramDataModule(str(topic_corpus_file), min_count=1, shuffle=False)
        data.setup("fit")
        return data

    original = data_module()
    chunk = next(iter(original.train_dataloader()))
    original.on_after_batch_transfer(chunk, 0)
    resumed = data_module()
    resumed.load_state_dict(original.state_dict())
    assert torch.equal(original.on_after_batch_transfer(chunk, 0).mask,
                       resumed.on_after_batch_transfer(chunk, 0).mask)


def test_non_skipgram_batch_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match="SkipGramDataModule"):
        SkipGramTask(10, dim=4).training_step({"tokens": torch.zeros(3)}, 0)  # type: ignore[arg-type]


def test_checkpoint_with_another_vocabulary_of_the_same_size_is_refused(
    topic_corpus_file: Path, tmp_path: Path
) -> None:
    data = SkipGramDataModule(str(topic_corpus_file), min_count=1)
    task = SkipGramTask(data.vocab_size, dim=4)
    trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(task, data)
    trainer.save_checkpoint(tmp_path / "a.ckpt")
    vocabulary = data.vocabulary
    Vocabulary(list(reversed(vocabulary.tokens)), vocabulary.counts.flip(0).tolist()).save(
        tmp_path / "reversed.tsv"
    )
    other = SkipGramDataModule(str(topic_corpus_file), vocabulary=str(tmp_path / "reversed.tsv"))
    again = pl.Trainer(max_epochs=2, logger=False, enable_checkpointing=False,
                       enable_progress_bar=False, enable_model_summary=False)
    with pytest.raises(ValueError, match="another vocabulary"):
        again.fit(SkipGramTask(data.vocab_size, dim=4), other, ckpt_path=tmp_path / "a.ckpt")
    assert vocabulary.fingerprint() != Vocabulary.load(tmp_path / "reversed.tsv").fingerprint()


def test_run_stopped_by_max_steps_is_evaluated_at_its_end(
    topic_corpus_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    main(["fit", *tiny_args(topic_corpus_file), "--trainer.max_steps", "2",
          "--model.update_size", "64"])
    metrics = next((tmp_path / "outputs/skipgram/logs").glob("version_*/metrics.csv"))
    with open(metrics, encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert any(row.get("val/ws353") for row in rows)


def test_window_streams_of_different_ranks_differ_after_one_checkpoint(
    topic_corpus_file: Path,
) -> None:
    original = SkipGramDataModule(str(topic_corpus_file), min_count=1, shuffle=False)
    original.setup("fit")
    chunk = next(iter(original.train_dataloader()))
    original.on_after_batch_transfer(chunk, 0)
    state = original.state_dict()
    streams = []
    for rank in (0, 1):
        resumed = SkipGramDataModule(str(topic_corpus_file), min_count=1, shuffle=False)
        resumed.load_state_dict(state)
        resumed._stream.set_rank(rank)
        streams.append(torch.rand(16, generator=resumed._stream.generator(torch.device("cpu"))))
    assert not torch.equal(streams[0], streams[1])
