"""The skip-gram task's fused engine through Lightning, against the per-pair reference: chunks,
learning-rate schedule, negatives and masks, λ, the logged loss, resume; engine choice and
errors."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from nslightning.data import SkipGramDataModule
from nslightning.losses import InfoNCELoss, SGNSLoss
from nslightning.optim import SparseSGD
from nslightning.samplers import UnigramSampler
from nslightning.tasks import SkipGramTask
from nslightning.tasks.skipgram_engine import fused_obstacle, resolve_engine
from tests.kernels.reference import reference_sgns_chunk

LR, MIN_LR, EPOCHS = 0.05, 0.002, 2


class Recorder:
    """Wraps the task's ``draw_negatives``: keeps each chunk's windows, negatives and the tables
    as they were before the chunk was trained."""

    def __init__(self, task: SkipGramTask) -> None:
        self.task = task
        self.chunks: list[dict] = []
        self._draw = task.draw_negatives
        task.draw_negatives = self  # type: ignore[method-assign]

    def __call__(self, centers, contexts, mask):
        negatives = self._draw(centers, contexts, mask)
        self.chunks.append({
            "syn0": self.task.embeddings.input.weight.detach().double().numpy().copy(),
            "syn1": self.task.embeddings.output.weight.detach().double().numpy().copy(),
            "centers": centers.numpy().copy(), "contexts": contexts.numpy().copy(),
            "mask": mask.numpy().copy(), "negatives": negatives.ids.numpy().copy(),
            "keep": negatives.mask.numpy().copy(),
        })
        return negatives


class LoggedLoss(pl.Callback):
    def __init__(self) -> None:
        self.values: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.values.append(float(trainer.callback_metrics["train/loss"]))


def fused_run(corpus: Path, callbacks=(), **task_kwargs):
    pl.seed_everything(0, verbose=False)
    data = SkipGramDataModule(str(corpus), min_count=1, batch_size=700, window=3, sample=1e-2,
                              seed=0)
    task = SkipGramTask(data.vocab_size, dim=8, num_negatives=3, lr=LR, min_lr=MIN_LR,
                        sampler=UnigramSampler(seed=0), engine="fused", threads=1,
                        diagnostics_every=0, **task_kwargs)
    recorder = Recorder(task)
    trainer = pl.Trainer(max_epochs=EPOCHS, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         accelerator="cpu", log_every_n_steps=1, callbacks=list(callbacks))
    trainer.fit(task, data)
    return task, trainer, recorder


@pytest.mark.parametrize(("exclude_window", "lam"), [(False, 1.0), (True, 1.0), (False, 0.4)])
def test_fused_task_trains_every_chunk_as_the_reference_does(
    topic_corpus_file: Path, exclude_window: bool, lam: float
) -> None:
    logged = LoggedLoss()
    task, trainer, recorder = fused_run(
        topic_corpus_file, callbacks=[logged],
        accidental_hits="known" if exclude_window else "positive",
        loss=SGNSLoss(lam=lam, reduction="sum"),
    )
    chunks = recorder.chunks
    per_epoch = trainer.num_training_batches
    assert per_epoch >= 4 and len(chunks) == EPOCHS * per_epoch == trainer.global_step
    final = (task.embeddings.input.weight.detach().double().numpy(),
             task.embeddings.output.weight.detach().double().numpy())
    for number, chunk in enumerate(chunks):
        # the schedule, independently: linear over the run's chunks, inside each chunk too
        lr_start = LR - (LR - MIN_LR) * number / len(chunks)
        lr_end = LR - (LR - MIN_LR) * (number + 1) / len(chunks)
        syn0, syn1 = chunk["syn0"].copy(), chunk["syn1"].copy()
        loss, pairs = reference_sgns_chunk(
            syn0, syn1, chunk["centers"], chunk["contexts"], chunk["mask"], chunk["negatives"],
            chunk["keep"], lr_start, lr_end, lam,
        )
        after = chunks[number + 1] if number + 1 < len(chunks) else None
        np.testing.assert_allclose(syn0, after["syn0"] if after else final[0], atol=1e-6,
                                   rtol=1e-6)
        np.testing.assert_allclose(syn1, after["syn1"] if after else final[1], atol=1e-6,
                                   rtol=1e-6)
        assert logged.values[number] == pytest.approx(loss / pairs, rel=1e-5)
        hits = chunk["negatives"] == chunk["centers"][:, None]
        assert not (chunk["keep"] & hits).any()
        in_window = (chunk["negatives"][:, :, None] == chunk["contexts"][:, None, :]) & chunk[
            "mask"][:, None, :]
        assert (chunk["keep"] & in_window.any(-1)).any() != exclude_window


def test_diagnostics_are_logged_by_the_fused_engine(topic_corpus_file: Path, tmp_path: Path
                                                    ) -> None:
    data = SkipGramDataModule(str(topic_corpus_file), min_count=1, batch_size=700)
    task = SkipGramTask(data.vocab_size, dim=8, engine="fused", diagnostics_every=1)
    logger = pl.loggers.CSVLogger(tmp_path)
    trainer = pl.Trainer(max_epochs=1, logger=logger, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         log_every_n_steps=1)
    trainer.fit(task, data)
    header = (Path(logger.log_dir) / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"sampler/hit_rate", "sampler/score_gap", "train/loss", "train/pairs"} <= set(header)


class StopAfterFirstEpoch(pl.Callback):
    def on_train_epoch_end(self, trainer, pl_module) -> None:
        trainer.should_stop = True


def test_resume_continues_the_run_as_if_never_stopped(topic_corpus_file: Path, tmp_path: Path
                                                      ) -> None:
    def run(ckpt_path: Path | None = None, stop: bool = False) -> tuple[SkipGramTask, pl.Trainer]:
        pl.seed_everything(0, verbose=False)
        data = SkipGramDataModule(str(topic_corpus_file), min_count=1, batch_size=700, seed=0,
                                  shuffle=False)
        task = SkipGramTask(data.vocab_size, dim=8, engine="fused", threads=1,
                            sampler=UnigramSampler(seed=0))
        trainer = pl.Trainer(max_epochs=3, logger=False, enable_checkpointing=False,
                             enable_progress_bar=False, enable_model_summary=False,
                             callbacks=[StopAfterFirstEpoch()] if stop else [])
        trainer.fit(task, data, ckpt_path=ckpt_path)
        return task, trainer

    stopped, trainer = run(stop=True)
    assert trainer.global_step == trainer.num_training_batches  # one epoch of three
    trainer.save_checkpoint(tmp_path / "epoch1.ckpt")
    resumed, trainer = run(tmp_path / "epoch1.ckpt")
    whole, whole_trainer = run()
    assert trainer.global_step == whole_trainer.global_step == 3 * trainer.num_training_batches
    assert not torch.equal(stopped.word_vectors(), whole.word_vectors())
    assert torch.equal(resumed.word_vectors(), whole.word_vectors())


def test_engine_choice() -> None:
    assert resolve_engine("auto", torch.device("cpu")) == "fused"
    assert resolve_engine("autograd", torch.device("cpu")) == "autograd"
    # never verified on a GPU yet: auto keeps autograd there, fused is an explicit opt-in
    assert resolve_engine("auto", torch.device("cuda")) == "autograd"
    assert resolve_engine("auto", torch.device("mps")) == "autograd"
    with pytest.raises(RuntimeError, match="engine: autograd"):
        resolve_engine("fused", torch.device("mps"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"engine": "warp"}, "engine must be one of auto, fused, autograd"),
     ({"loss": "negative λ"}, r"lam \(λ\) must be >= 0"), ({"threads": 0}, "threads must be >= 1"),
     ({"sync_every": 0}, "sync_every must be >= 1")],
)
def test_bad_engine_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        if kwargs.get("loss") == "negative λ":
            kwargs = {"loss": SGNSLoss(lam=-0.5)}
        SkipGramTask(10, **kwargs)


def test_fused_engine_refuses_float64_tables(topic_corpus_file: Path) -> None:
    data = SkipGramDataModule(str(topic_corpus_file), min_count=1)
    task = SkipGramTask(data.vocab_size, dim=4, engine="fused")
    trainer = pl.Trainer(max_steps=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         precision="64-true")
    with pytest.raises(ValueError, match=r"float32 tables.*--model.engine autograd"):
        trainer.fit(task, data)


def test_auto_falls_back_to_autograd_where_the_fused_engine_cannot_train(
    topic_corpus_file: Path
) -> None:
    data = SkipGramDataModule(str(topic_corpus_file), min_count=1, batch_size=700)
    task = SkipGramTask(data.vocab_size, dim=4, sparse=False, optimizer=torch.optim.Adam)
    trainer = pl.Trainer(max_steps=3, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(task, data)
    assert task.engine_in_use == "autograd" and trainer.global_step == 3
    # and what stops the fused engine, reason by reason
    sgd, sgns = SparseSGD(task.parameters()), SGNSLoss(lam=0.5, reduction="sum")
    assert fused_obstacle(sgd, torch.float32, "32-true", sgns) is None
    assert fused_obstacle(sgd, torch.float32, "bf16-mixed", sgns) is None
    assert "gradient scaler" in fused_obstacle(sgd, torch.float32, "16-mixed", sgns)
    assert "float32" in fused_obstacle(sgd, torch.float64, "64-true", sgns)
    assert "Adam would be ignored" in fused_obstacle(torch.optim.Adam(task.parameters()),
                                                     torch.float32, "32-true", sgns)
    momentum = torch.optim.SGD(task.parameters(), lr=0.1, momentum=0.9)
    assert fused_obstacle(momentum, torch.float32, "32-true", sgns) is not None
    assert "InfoNCELoss has no fused form" in fused_obstacle(
        sgd, torch.float32, "32-true", InfoNCELoss()
    )


def test_a_loss_without_a_fused_form_trains_with_autograd(topic_corpus_file: Path) -> None:
    data = SkipGramDataModule(str(topic_corpus_file), min_count=1, batch_size=700)
    task = SkipGramTask(data.vocab_size, dim=4, loss=InfoNCELoss(), diagnostics_every=0)
    trainer = pl.Trainer(max_steps=2, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(task, data)
    assert task.engine_in_use == "autograd" and trainer.global_step == 2
    explicit = SkipGramTask(data.vocab_size, dim=4, loss=InfoNCELoss(), engine="fused")
    trainer = pl.Trainer(max_steps=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    with pytest.raises(ValueError, match=r"InfoNCELoss has no fused form.*engine autograd"):
        trainer.fit(explicit, data)


def test_fused_engine_sums_the_loss_on_the_steps_lightning_writes(
    topic_corpus_file: Path, tmp_path: Path
) -> None:
    data = SkipGramDataModule(str(topic_corpus_file), min_count=1, batch_size=500)
    task = SkipGramTask(data.vocab_size, dim=8, engine="fused", diagnostics_every=0)
    with_loss: list[bool] = []
    fused_step = task.fused_step

    def spy(batch, batch_idx, with_loss_now=True):
        with_loss.append(with_loss_now)
        return fused_step(batch, batch_idx, with_loss=with_loss_now)

    task.fused_step = lambda batch, batch_idx, with_loss=True: spy(batch, batch_idx, with_loss)
    logger = pl.loggers.CSVLogger(tmp_path)
    trainer = pl.Trainer(max_epochs=2, logger=logger, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         log_every_n_steps=3)
    trainer.fit(task, data)
    per_epoch = trainer.num_training_batches
    expected = [(step + 1) % 3 == 0 or (step + 1) % per_epoch == 0
                for step in range(2 * per_epoch)]
    assert with_loss == expected and not all(expected)
    with open(Path(logger.log_dir) / "metrics.csv", encoding="utf-8") as handle:
        steps = [int(row["step"]) for row in csv.DictReader(handle) if row.get("train/loss")]
    written = [step for step in range(2 * per_epoch) if (step + 1) % 3 == 0]
    assert steps and set(written) <= set(steps)
    lr = [group["lr"] for group in trainer.optimizers[0].param_groups]
    assert lr == [pytest.approx(task.min_lr)]  # the optimizer shows the schedule's value


def test_a_resumed_checkpoint_keeps_the_engine_that_trained_it(
    topic_corpus_file: Path, tmp_path: Path
) -> None:
    def fit(engine: str, stop: bool, ckpt_path: Path | None = None):
        # without subsampling every epoch has the same number of autograd updates
        data = SkipGramDataModule(str(topic_corpus_file), min_count=1, batch_size=700,
                                  sample=None)
        task = SkipGramTask(data.vocab_size, dim=4, engine=engine, update_size=64)
        trainer = pl.Trainer(max_epochs=2, logger=False, enable_checkpointing=False,
                             enable_progress_bar=False, enable_model_summary=False,
                             callbacks=[StopAfterFirstEpoch()] if stop else [])
        trainer.fit(task, data, ckpt_path=ckpt_path)
        return task, trainer

    _, trainer = fit("autograd", stop=True)
    updates_per_epoch = trainer.global_step
    assert updates_per_epoch > trainer.num_training_batches  # autograd counts updates
    trainer.save_checkpoint(tmp_path / "autograd.ckpt")
    assert torch.load(tmp_path / "autograd.ckpt", weights_only=False)["skipgram_engine"] == (
        "autograd")
    resumed, trainer = fit("auto", stop=False, ckpt_path=tmp_path / "autograd.ckpt")
    assert resumed.engine_in_use == "autograd" and trainer.global_step == 2 * updates_per_epoch
    with pytest.warns(UserWarning, match="trained with the autograd engine.*--model.engine"):
        switched, _ = fit("fused", stop=False, ckpt_path=tmp_path / "autograd.ckpt")
    assert switched.engine_in_use == "fused"
