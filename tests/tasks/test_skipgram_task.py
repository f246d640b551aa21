from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from nslightning.callbacks import WordVectorEvaluation
from nslightning.cli import build_cli
from nslightning.data import SkipGramDataModule, Vocabulary
from nslightning.deprecation import NSLightningDeprecationWarning
from nslightning.losses import InfoNCELoss, SGNSLoss
from nslightning.optim import SparseSGD
from nslightning.samplers import (
    HardNegativeSampler,
    InBatchSampler,
    MemoryBankSampler,
    MixedSampler,
    UniformSampler,
    UnigramSampler,
)
from nslightning.tasks import SkipGramTask
from tests.cli_args import tiny_args
from tests.corpora import TOPICS


def fit(
    corpus: Path, epochs: int = 3, seed: int = 0, **task_kwargs
) -> tuple[SkipGramTask, SkipGramDataModule]:
    pl.seed_everything(seed, verbose=False)
    data = SkipGramDataModule(str(corpus), min_count=1, batch_size=1000, window=3, sample=None,
                              seed=seed)
    task = SkipGramTask(data.vocab_size, dim=16, sampler=UnigramSampler(seed=seed),
                        update_size=64, **task_kwargs)
    trainer = pl.Trainer(max_epochs=epochs, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    trainer.fit(task, data)
    return task, data


def cosine(vectors: torch.Tensor, a: int, b: int) -> float:
    return float(torch.nn.functional.cosine_similarity(vectors[a], vectors[b], dim=0))


@pytest.mark.parametrize("engine", ["fused", "autograd"])
def test_learns_topics(topic_corpus_file: Path, engine: str) -> None:
    task, data = fit(topic_corpus_file, epochs=8, lr=0.05, engine=engine)
    vectors = task.word_vectors()
    index = data.vocabulary.index
    within, across = [], []
    names = sorted(TOPICS)
    for name in names:
        words = TOPICS[name]
        other = TOPICS[names[(names.index(name) + 1) % len(names)]]
        within += [cosine(vectors, index[words[i]], index[words[i + 1]]) for i in range(7)]
        across += [cosine(vectors, index[words[i]], index[other[i]]) for i in range(8)]
    assert np.mean(within) > np.mean(across) + 0.3


@pytest.mark.parametrize("engine", [{"engine": "fused", "threads": 1}, {"engine": "autograd"}])
def test_same_seed_same_vectors(topic_corpus_file: Path, engine: dict) -> None:
    a, _ = fit(topic_corpus_file, epochs=1, seed=5, **engine)
    b, _ = fit(topic_corpus_file, epochs=1, seed=5, **engine)
    c, _ = fit(topic_corpus_file, epochs=1, seed=6, **engine)
    assert torch.equal(a.word_vectors(), b.word_vectors())
    assert not torch.equal(a.word_vectors(), c.word_vectors())


class RecordLearningRate(pl.Callback):
    def __init__(self) -> None:
        self.values: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.values.append(trainer.optimizers[0].param_groups[0]["lr"])


def test_learning_rate_decays_linearly_to_min_lr(topic_corpus_file: Path) -> None:
    data = SkipGramDataModule(str(topic_corpus_file), min_count=1, batch_size=200, sample=None)
    task = SkipGramTask(data.vocab_size, dim=8, lr=0.04, min_lr=0.001, update_size=10_000,
                        engine="autograd")
    record = RecordLearningRate()
    trainer = pl.Trainer(max_epochs=2, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[record])
    trainer.fit(task, data)
    steps = len(record.values)
    assert steps == 2 * trainer.num_training_batches
    # one update per batch (update_size > batch), taken at the batch's start
    expected = [0.04 - 0.039 * i / steps for i in range(steps)]
    assert record.values == pytest.approx(expected)


@pytest.mark.parametrize("lam", [1.0, 0.3])
def test_one_update_is_word2vec_sgd(lam: float) -> None:
    """A task update equals SGD on the SGNS loss, computed here with plain autograd."""
    torch.manual_seed(0)
    vocab, dim = 30, 8
    task = SkipGramTask(vocab, dim=dim, num_negatives=3, sampler=UniformSampler(seed=4),
                        loss=SGNSLoss(lam=lam, reduction="sum"))
    task.sampler.setup(torch.ones(vocab))
    with torch.no_grad():
        task.embeddings.output.weight.normal_()
    centers = torch.randint(0, vocab, (6,))
    contexts = torch.randint(0, vocab, (6, 4))
    mask = torch.rand(6, 4) < 0.7
    w_in = task.embeddings.input.weight.detach().clone().requires_grad_(True)
    w_out = task.embeddings.output.weight.detach().clone().requires_grad_(True)

    negatives = UniformSampler(seed=4)
    negatives.setup(torch.ones(vocab))
    drawn = negatives.sample(centers, 3)
    targets = torch.cat([centers[:, None], drawn.ids], 1)
    scores = torch.einsum("ncd,ntd->nct", w_in[contexts], w_out[targets])
    negative_terms = -(torch.nn.functional.logsigmoid(-scores[..., 1:]) * drawn.mask[:, None, :])
    per_pair = -torch.nn.functional.logsigmoid(scores[..., 0]) + lam * negative_terms.sum(-1)
    reference = (per_pair * mask).sum()
    reference.backward()

    optimizer = SparseSGD(task.parameters(), lr=0.1, max_repeats=None)
    loss, pairs = task.update_loss(centers, contexts, mask)
    loss.backward()
    optimizer.step()
    assert loss.item() == pytest.approx(reference.item(), rel=1e-5)
    assert pairs.item() == mask.sum().item()
    assert torch.allclose(task.embeddings.input.weight, w_in - 0.1 * w_in.grad, atol=1e-6)
    assert torch.allclose(task.embeddings.output.weight, w_out - 0.1 * w_out.grad, atol=1e-6)


def test_vocabulary_mismatch_is_a_clear_error(topic_corpus_file: Path) -> None:
    data = SkipGramDataModule(str(topic_corpus_file), min_count=1)
    task = SkipGramTask(data.vocab_size + 1, dim=4)
    trainer = pl.Trainer(max_steps=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    with pytest.raises(ValueError, match=r"vocabulary size mismatch.*--data\.vocabulary"):
        trainer.fit(task, data)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"num_negatives": 0}, "num_negatives"), ({"dim": 0}, "dim must be >= 1"),
     ({"lr": -1.0}, "lr > 0"), ({"update_size": 0}, "update_size")],
)
def test_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SkipGramTask(10, **kwargs)


def test_checkpoint_round_trip(topic_corpus_file: Path, tmp_path: Path) -> None:
    task, data = fit(topic_corpus_file, epochs=1)
    task.trainer.save_checkpoint(tmp_path / "last.ckpt")
    loaded = SkipGramTask.load_from_checkpoint(tmp_path / "last.ckpt", sampler=UnigramSampler())
    assert torch.equal(loaded.word_vectors(), task.word_vectors())
    assert torch.equal(loaded.sampler.accept, task.sampler.accept)
    assert loaded.sampler.vocab_size == data.vocab_size


@pytest.mark.parametrize(("max_repeats", "stable"), [(32.0, True), (None, False)])
def test_no_subsampling_stays_stable_with_the_repeat_cap(max_repeats, stable: bool) -> None:
    """Without subsampling, frequent words repeat hundreds of times per update: summed plainly,
    their vectors blow up within one epoch (|v| > 100 on this corpus); capped, they stay small."""
    pl.seed_everything(0, verbose=False)
    data = SkipGramDataModule("enwiki-sample", sample=None)
    task = SkipGramTask(data.vocab_size, optimizer=lambda p: SparseSGD(p, max_repeats=max_repeats),
                        engine="autograd")
    trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(task, data)
    largest = float(task.word_vectors().abs().max())
    assert (largest < 10.0) is stable, largest


@pytest.mark.parametrize(
    "make_sampler",
    [UnigramSampler, UniformSampler, lambda: MixedSampler([UniformSampler(), UnigramSampler()],
                                                          shares=[0.5, 0.5]),
     lambda: HardNegativeSampler(base=UniformSampler(), pool_size=40),
     lambda: MemoryBankSampler(size=64)],
    ids=["unigram", "uniform", "mixed", "hard", "memory_bank"],
)
def test_as_many_negatives_as_words_is_refused(make_sampler) -> None:
    with pytest.raises(
        ValueError, match=r"num_negatives=30 >= vocabulary size 30: .*--model\.num_negatives "
        r"below 30.*--data\.min_count",
    ):
        SkipGramTask(30, num_negatives=30, sampler=make_sampler())
    SkipGramTask(30, num_negatives=29, sampler=make_sampler())


@pytest.mark.parametrize(
    "make_sampler",
    [InBatchSampler, lambda: InBatchSampler(all_others=True),
     lambda: MixedSampler([InBatchSampler(), UniformSampler()], shares=[0.5, 0.5]),
     lambda: HardNegativeSampler(base=InBatchSampler(), pool_size=40)],
    ids=["in_batch", "all_others", "mixed_with_in_batch", "hard_over_in_batch"],
)
def test_samplers_that_draw_from_the_batch_may_ask_for_more(make_sampler) -> None:
    SkipGramTask(30, num_negatives=35, sampler=make_sampler())


def test_the_cli_user_sees_the_refusal(topic_corpus_file: Path) -> None:
    with pytest.raises(ValueError, match="num_negatives=40 >= vocabulary size 32"):
        build_cli([*tiny_args(topic_corpus_file), "--model.num_negatives", "40"], run=False)


class RecordStepsAtBatchStart(pl.Callback):
    """``global_step`` (the update count under autograd) when each batch starts; stops the run
    inside its second epoch."""

    def __init__(self) -> None:
        self.starts: list[int] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.starts.append(trainer.global_step)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if len(self.starts) == trainer.num_training_batches + 2:
            trainer.should_stop = True


@pytest.mark.parametrize("engine", ["autograd", "fused"])
def test_every_metrics_row_is_on_the_trainers_step_scale(
    topic_corpus_file: Path, tmp_path: Path, engine: str
) -> None:
    """The loss, the sampler diagnostics and the evaluation of a run stopped inside an epoch
    share one step scale (Lightning's batches); the update count is a column,
    ``sampler/update``."""
    pl.seed_everything(0, verbose=False)
    data = SkipGramDataModule(str(topic_corpus_file), min_count=1, batch_size=1000, window=3,
                              sample=None, seed=0)
    task = SkipGramTask(data.vocab_size, dim=8, update_size=64, diagnostics_every=3,
                        engine=engine)
    record = RecordStepsAtBatchStart()
    logger = pl.loggers.CSVLogger(tmp_path)
    trainer = pl.Trainer(
        max_epochs=3, logger=logger, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, accelerator="cpu", log_every_n_steps=1,
        callbacks=[record, WordVectorEvaluation(every_n_epochs=5, analogy=False, probes=())],
    )
    trainer.fit(task, data)
    batches = len(record.starts)
    assert batches == trainer.num_training_batches + 2
    if engine == "autograd":
        assert trainer.global_step > 2 * batches  # several updates per batch: two scales
    with open(Path(logger.log_dir) / "metrics.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    steps = [int(row["step"]) for row in rows]
    assert all(0 <= step <= min(batches, trainer.global_step) for step in steps)
    loss_steps = [int(row["step"]) for row in rows if row["train/loss"]]
    assert loss_steps == list(range(batches))
    sampler_rows = [row for row in rows if row["sampler/hit_rate"]]
    assert len(sampler_rows) >= 3
    ends = [*record.starts[1:], trainer.global_step]
    for row in sampler_rows:
        step, update = int(row["step"]), int(float(row["sampler/update"]))
        assert step in loss_steps
        assert record.starts[step] <= update < ends[step], (step, update)
        assert update % 3 == 0
    # evaluated once, when training ended (in the second epoch), after the last batch
    assert [int(row["step"]) for row in rows if row.get("val/ws353")] == [batches]


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
    other = SkipGramDataModule(
        str(topic_corpus_file), vocabulary_path=str(tmp_path / "reversed.tsv")
    )
    again = pl.Trainer(max_epochs=2, logger=False, enable_checkpointing=False,
                       enable_progress_bar=False, enable_model_summary=False)
    with pytest.raises(ValueError, match="another vocabulary"):
        again.fit(SkipGramTask(data.vocab_size, dim=4), other, ckpt_path=tmp_path / "a.ckpt")
    assert vocabulary.fingerprint() != Vocabulary.load(tmp_path / "reversed.tsv").fingerprint()


def test_lam_and_exclude_window_are_deprecated_spellings() -> None:
    with pytest.warns(NSLightningDeprecationWarning, match=r"use --model.loss.lam"):
        task = SkipGramTask(30, lam=0.4)
    assert isinstance(task.loss, SGNSLoss) and task.loss.lam == 0.4
    assert task.loss.reduction == "sum"
    with pytest.warns(NSLightningDeprecationWarning):  # a config's SGNSLoss takes the old λ
        task = SkipGramTask(30, lam=0.2, loss=SGNSLoss(lam=1.0, reduction="mean"))
    assert (task.loss.lam, task.loss.reduction) == (0.2, "mean")
    with pytest.warns(NSLightningDeprecationWarning, match="accidental_hits='known'") as record:
        assert SkipGramTask(30, exclude_window=True).accidental_hits == "known"
    assert record[0].filename == __file__  # the warning points at the caller's line
    with pytest.warns(NSLightningDeprecationWarning), pytest.raises(ValueError, match="InfoNCE"):
        SkipGramTask(30, lam=0.4, loss=InfoNCELoss())
    with pytest.raises(ValueError, match="supports accidental_hits positive or known"):
        SkipGramTask(30, accidental_hits="keep")


def test_a_mean_loss_is_scaled_to_the_sum_over_pairs() -> None:
    """word2vec's learning rate is per pair: a loss with reduction 'mean' is multiplied by the
    number of pairs, so that SGNSLoss(reduction='mean') gives the sum's loss and gradients."""
    centers, contexts = torch.randint(0, 30, (6,)), torch.randint(0, 30, (6, 4))
    mask = torch.rand(6, 4) < 0.7
    results = {}
    for reduction in ("sum", "mean"):
        torch.manual_seed(0)
        task = SkipGramTask(30, dim=8, num_negatives=3, sampler=UniformSampler(seed=4),
                            loss=SGNSLoss(lam=0.5, reduction=reduction))
        task.sampler.setup(torch.ones(30))
        with torch.no_grad():
            task.embeddings.output.weight.normal_()
        loss_sum, pairs = task.update_loss(centers, contexts, mask)
        loss_sum.backward()
        grad = task.embeddings.output.weight.grad.to_dense()
        results[reduction] = (loss_sum.detach(), pairs, grad)
    assert results["sum"][1] == results["mean"][1] == mask.sum()
    torch.testing.assert_close(results["mean"][0], results["sum"][0])
    torch.testing.assert_close(results["mean"][2], results["sum"][2])
