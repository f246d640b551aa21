"""A non-finite loss stops every task with a message naming the step, and no checkpoint of the
diverged state is written (nslightning.tasks.finite_guard)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint

from nslightning.data import PairDataModule, SkipGramDataModule
from nslightning.tasks import ContrastiveTask, LanguageModelTask, SkipGramTask
from nslightning.tasks.finite_guard import FiniteGuard, NonFiniteLossError
from tests.corpora import data_for, pattern_text, write_groups

MESSAGE = re.compile(
    r"(?P<name>\S+) is (?P<kind>nan|inf|-inf) at step (?P<step>\d+) \(epoch (?P<epoch>\d+), "
    r"batch (?P<batch>\d+)\).*no checkpoint of this state is saved\. Lower --model\.lr"
)


class PlantAt(pl.Callback):
    """Runs ``plant(module, batch)`` when training batch number ``at`` (over the run) starts."""

    def __init__(self, at: int, plant: Callable[[Any, Any], None]) -> None:
        self.at = at
        self.plant = plant
        self.seen = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.seen == self.at:
            self.plant(pl_module, batch)
        self.seen += 1


def fit_until_it_fails(
    task: pl.LightningModule, data: pl.LightningDataModule, tmp_path: Path, plant: PlantAt,
    **trainer_options: Any,
) -> tuple[pl.Trainer, re.Match[str], list[int]]:
    """Fits with a checkpoint after every step; returns the trainer, the parsed error and the
    steps of the checkpoints written (all of them finite)."""
    folder = tmp_path / "checkpoints"
    checkpoints = ModelCheckpoint(dirpath=folder, filename="{step}", every_n_train_steps=1,
                                  save_top_k=-1)
    options: dict[str, Any] = {
        "max_epochs": 3, "logger": False, "enable_progress_bar": False,
        "enable_model_summary": False, "accelerator": "cpu", "num_sanity_val_steps": 0,
        "limit_val_batches": 0, "log_every_n_steps": 1, "callbacks": [plant, checkpoints],
    }
    trainer = pl.Trainer(**{**options, **trainer_options})
    with pytest.raises(NonFiniteLossError) as error:
        trainer.fit(task, data)
    found = MESSAGE.search(str(error.value))
    assert found is not None, str(error.value)
    steps = []
    for path in folder.glob("*.ckpt"):
        state = torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
        assert all(torch.isfinite(v).all() for v in state.values()
                   if isinstance(v, torch.Tensor) and v.is_floating_point())
        steps.append(int(re.fullmatch(r"step=(\d+)", path.stem)[1]))  # type: ignore[index]
    return trainer, found, sorted(steps)


def fill_output_table(value: float) -> Callable[[Any, Any], None]:
    def plant(task: Any, batch: Any) -> None:
        with torch.no_grad():
            task.embeddings.output.weight[:] = value
    return plant


def skipgram(corpus: Path, **options: Any) -> tuple[SkipGramTask, SkipGramDataModule]:
    pl.seed_everything(0, verbose=False)
    data = SkipGramDataModule(str(corpus), min_count=1, batch_size=700, window=3, sample=None,
                              seed=0)
    return SkipGramTask(data.vocab_size, dim=8, update_size=256, **options), data


@pytest.mark.parametrize("engine", ["fused", "autograd"])
def test_skipgram_stops_at_the_step_whose_loss_is_nan(
    topic_corpus_file: Path, tmp_path: Path, engine: str
) -> None:
    task, data = skipgram(topic_corpus_file, engine=engine)
    trainer, found, steps = fit_until_it_fails(
        task, data, tmp_path, PlantAt(3, fill_output_table(math.inf))
    )
    assert found["name"] == "train/loss" and found["kind"] == "nan"
    assert (found["step"], found["epoch"], found["batch"]) == ("3", "0", "3")
    # written after batches 0, 1 and 2 (one global step per batch, or several under autograd)
    assert len(steps) == 3 and steps[-1] <= trainer.global_step
    if engine == "fused":
        assert steps == [1, 2, 3]


def test_the_fused_engine_steps_without_a_loss_are_caught_before_a_checkpoint(
    topic_corpus_file: Path, tmp_path: Path
) -> None:
    """The fused kernel sums no loss on the steps whose logs are not written: the tables are
    checked before each checkpoint instead."""
    task, data = skipgram(topic_corpus_file, engine="fused")
    _, found, steps = fit_until_it_fails(
        task, data, tmp_path, PlantAt(3, fill_output_table(math.inf)), log_every_n_steps=50
    )
    assert found["name"] in ("embeddings.input.weight", "embeddings.output.weight")
    assert "the parameter embeddings." in found.string
    assert "diverged at or before this step" in found.string
    assert (found["step"], found["epoch"], found["batch"]) == ("3", "0", "3")
    assert steps == [1, 2, 3]


def contrastive(tmp_path: Path) -> tuple[ContrastiveTask, PairDataModule]:
    pl.seed_everything(0, verbose=False)
    data = PairDataModule(str(write_groups(tmp_path / "pairs.tsv")), batch_size=16)
    task = ContrastiveTask(data.vocab_size, data.num_anchors, dim=4, num_negatives=3,
                           diagnostics_every=0)
    return task, data


def infinite_weight(task: Any, batch: Any) -> None:
    batch["weights"][0] = math.inf  # a planted input: the loss weighs pairs by it


def test_contrastive_stops_at_the_step_whose_loss_is_not_finite(tmp_path: Path) -> None:
    task, data = contrastive(tmp_path)
    _, found, steps = fit_until_it_fails(task, data, tmp_path, PlantAt(2, infinite_weight))
    assert found["name"] == "train/loss" and found["kind"] in ("inf", "nan")
    assert (found["step"], found["epoch"], found["batch"]) == ("2", "0", "2")
    assert steps == [1, 2]
    assert torch.isfinite(task.embeddings.item_encoder.weight).all()  # raised before the update


def test_language_model_stops_at_the_step_whose_loss_is_nan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = data_for(pattern_text(tmp_path / "text.txt"))
    task = LanguageModelTask(vocab_size=data.vocab_size, dim=8, hidden_size=8,
                             num_layers=1, dropout=0.0, num_negatives=3, lr=0.01)
    forward = task.output.forward
    calls = []

    def nan_on_the_fifth_call(*args: Any, **kwargs: Any) -> torch.Tensor:
        calls.append(1)
        loss = forward(*args, **kwargs)
        return loss * math.nan if len(calls) == 5 else loss

    monkeypatch.setattr(task.output, "forward", nan_on_the_fifth_call)
    _, found, steps = fit_until_it_fails(task, data, tmp_path, PlantAt(-1, lambda t, b: None))
    assert found["name"] == "train/loss" and found["kind"] == "nan"
    assert (found["step"], found["epoch"], found["batch"]) == ("4", "0", "4")
    assert steps == [1, 2, 3, 4]


def test_deferred_check_raises_before_the_next_checkpoint(tmp_path: Path) -> None:
    """On an accelerator the check stays on the device: the step is read back before a
    checkpoint is written (ModelCheckpoint saves before the task's on_train_batch_end)."""
    task, data = contrastive(tmp_path)
    task.finite_guard.defer = True  # what a CUDA loss gets
    _, found, steps = fit_until_it_fails(task, data, tmp_path, PlantAt(2, infinite_weight),
                                         log_every_n_steps=50)
    assert found["name"] == "train/loss"
    assert (found["step"], found["epoch"], found["batch"]) == ("2", "0", "2")
    assert steps == [1, 2]


def test_deferred_check_is_read_on_the_steps_whose_logs_are_written(tmp_path: Path) -> None:
    task, data = contrastive(tmp_path)
    task.finite_guard.defer = True
    task.finite_guard.check_state = lambda module: None  # type: ignore[method-assign]
    trainer = pl.Trainer(
        max_epochs=3, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, accelerator="cpu", num_sanity_val_steps=0,
        limit_val_batches=0, log_every_n_steps=4, callbacks=[PlantAt(1, infinite_weight)],
    )
    with pytest.raises(NonFiniteLossError, match=r"train/loss is \S+ at step 1 \(epoch 0, "
                       r"batch 1\)"):
        trainer.fit(task, data)
    assert trainer.global_step == 4  # trained on to the next logged step, then stopped


def test_the_deferred_check_reads_nothing_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a CUDA step runs: no ``item()``, ``bool()`` or ``tolist()`` (each would wait for
    the device)."""
    guard = FiniteGuard("advice", defer=True)
    trainer = pl.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False,
                         accelerator="cpu")
    module = pl.LightningModule()
    module.trainer = trainer

    def no_read_back(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a host read-back in the step")

    values = [torch.tensor(1.5), torch.tensor(math.inf), torch.tensor([2.0, math.nan])]
    with monkeypatch.context() as patch:
        for name in ("item", "__bool__", "tolist", "__int__", "__float__", "__index__"):
            patch.setattr(torch.Tensor, name, no_read_back)
        for batch, value in enumerate(values):
            guard.check(module, "train/loss", value, batch)
    first = r"train/loss is inf at step 0 \(epoch 0, batch 1\)"  # not batch 2's nan
    with pytest.raises(NonFiniteLossError, match=first):
        guard.raise_pending(module)
    guard.raise_pending(module)  # reported once
