"""Interrupted runs resume exactly: real CLI runs are killed (SIGKILL after a checkpoint) or
preempted (SIGTERM part-way through an epoch), resumed with ``--ckpt_path last``, and end
bit-identical to an uninterrupted run with the same seed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint

from nslightning.data import LanguageModelDataModule, SkipGramDataModule
from nslightning.tasks import LanguageModelTask, SkipGramTask
from tests.corpora import make_topic_corpus, pattern_text

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def skipgram_args(corpus: Path) -> list[str]:
    return [
        "-c", str(CONFIGS / "skipgram.yaml"), "--data.corpus", str(corpus),
        "--data.min_count", "1", "--data.batch_size", "200", "--model.dim", "16",
        "--model.threads", "1", "--trainer.max_epochs", "3",
        *QUIET,
    ]


def language_model_args(corpus: Path) -> list[str]:
    return [
        "-c", str(CONFIGS / "lm.yaml"), "--data.corpus", str(corpus), "--data.min_count", "1",
        "--data.batch_size", "4", "--data.eval_batch_size", "2", "--data.bptt", "8",
        "--model.dim", "32", "--model.hidden_size", "32", "--model.num_negatives", "8",
        "--model.dropout", "0.3", "--trainer.max_epochs", "3", *QUIET,
    ]


def contrastive_args(pairs: Path) -> list[str]:
    return [
        "-c", str(CONFIGS / "contrastive_pairs.yaml"), "--data.path", str(pairs),
        "--data.batch_size", "16", "--model.dim", "8", "--model.num_negatives", "4",
        "--trainer.max_epochs", "3", *QUIET,
    ]


@pytest.fixture(scope="module")
def corpora(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("resume-corpora")
    words = folder / "words.txt"
    words.write_text(
        "\n".join(" ".join(s) for s in make_topic_corpus(3000, seed=1)) + "\n", encoding="utf-8"
    )
    text = pattern_text(folder / "text.txt", lines=240)
    pairs = folder / "pairs.tsv"
    rows = [f"a{i}\tb{(i * 7 + j) % 300}" for i in range(2000) for j in range(5)]
    pairs.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return {"skipgram": words, "lm": text, "contrastive": pairs}


TASKS = {
    "skipgram": (skipgram_args, "outputs/skipgram/logs"),
    "lm": (language_model_args, "outputs/lm/logs"),
    "contrastive": (contrastive_args, "outputs/pairs/logs"),
}


def start(folder: Path, args: list[str]) -> subprocess.Popen[str]:
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    return subprocess.Popen(
        [sys.executable, "-m", "nslightning", "fit", *args], cwd=folder, env=env, text=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def finish(process: subprocess.Popen[str], timeout: float = 300) -> str:
    _, stderr = process.communicate(timeout=timeout)
    assert process.returncode == 0, stderr[-3000:]
    return stderr


def wait_for_checkpoint(folder: Path, process: subprocess.Popen[str]) -> Path:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        found = list(folder.glob("outputs/*/logs/*/checkpoints/last.ckpt"))
        if found:
            return found[0]
        if process.poll() is not None:
            raise AssertionError(f"the run ended before its first checkpoint: {process.stderr}")
        time.sleep(0.002)
    raise AssertionError("no checkpoint after 300 s")


def final_state(folder: Path, logs: str) -> dict[str, torch.Tensor]:
    """The weights of the newest run's last checkpoint."""
    newest = max(folder.glob(f"{logs}/*/checkpoints/last.ckpt"), key=os.path.getmtime)
    return torch.load(newest, map_location="cpu", weights_only=True)["state_dict"]


def exports(folder: Path, logs: str) -> list[bytes]:
    return [path.read_bytes() for path in sorted(folder.glob(f"{logs}/*/*.txt"))]


def assert_same_weights(left: object, right: object, name: str = "state_dict") -> None:
    """Tensors equal bit for bit, through nested dicts and lists (samplers' extra state)."""
    if isinstance(left, torch.Tensor):
        assert isinstance(right, torch.Tensor) and torch.equal(left, right), f"{name} differs"
    elif isinstance(left, dict):
        assert isinstance(right, dict) and left.keys() == right.keys(), f"{name}: other keys"
        for key in left:
            assert_same_weights(left[key], right[key], f"{name}.{key}")
    elif isinstance(left, (list, tuple)):
        assert isinstance(right, (list, tuple)) and len(left) == len(right), name
        for index, (one, other) in enumerate(zip(left, right, strict=True)):
            assert_same_weights(one, other, f"{name}[{index}]")
    else:
        assert left == right, f"{name}: {left!r} != {right!r}"


@pytest.fixture(scope="module")
def uninterrupted(
    corpora: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], Path]:
    """The folder of a task's run without an interruption (trained on first request)."""
    folders: dict[str, Path] = {}

    def folder_of(task: str) -> Path:
        if task not in folders:
            folder = tmp_path_factory.mktemp(f"{task}-uninterrupted")
            finish(start(folder, TASKS[task][0](corpora[task])))
            folders[task] = folder
        return folders[task]

    return folder_of


@pytest.mark.parametrize("task", sorted(TASKS))
def test_sigkill_after_a_checkpoint_then_resume_is_bit_identical(
    task: str, corpora: dict[str, Path], uninterrupted: Callable[[str], Path], tmp_path: Path
) -> None:
    make_args, logs = TASKS[task]
    killed = start(tmp_path, make_args(corpora[task]))
    wait_for_checkpoint(tmp_path, killed)
    killed.kill()
    killed.wait(timeout=60)
    assert killed.returncode == -signal.SIGKILL
    saved = torch.load(
        next(tmp_path.glob(f"{logs}/*/checkpoints/last.ckpt")), map_location="cpu",
        weights_only=True,
    )
    assert saved["epoch"] < 2, "the run finished before it could be killed"
    assert not exports(tmp_path, logs), "a killed run exported"

    finish(start(tmp_path, [*make_args(corpora[task]), "--ckpt_path", "last"]))
    assert_same_weights(final_state(tmp_path, logs), final_state(uninterrupted(task), logs))
    assert exports(tmp_path, logs) == exports(uninterrupted(task), logs)


@pytest.mark.parametrize(
    ("task", "signal_name"),
    [(task, "SIGTERM") for task in sorted(TASKS)] + [("skipgram", "SIGUSR1")],
)
def test_preemption_mid_epoch_saves_stops_and_resumes_bit_identical(
    task: str, signal_name: str, corpora: dict[str, Path], uninterrupted: Callable[[str], Path],
    tmp_path: Path,
) -> None:
    make_args, logs = TASKS[task]
    preempted = start(tmp_path, make_args(corpora[task]))
    first = wait_for_checkpoint(tmp_path, preempted)
    first_step = torch.load(first, map_location="cpu", weights_only=True)["global_step"]
    preempted.send_signal(signal.Signals[signal_name])
    _, stderr = preempted.communicate(timeout=120)
    assert preempted.returncode == 128 + signal.Signals[signal_name], stderr[-3000:]
    last_line = stderr.strip().splitlines()[-1]
    assert f"stopped by {signal_name}" in last_line and "--ckpt_path last" in last_line
    assert "Traceback" not in stderr
    saved = torch.load(first, map_location="cpu", weights_only=True)
    assert saved["global_step"] > first_step, "the signal did not save a checkpoint"
    assert not exports(tmp_path, logs), "a preempted run exported as if it had finished"

    finish(start(tmp_path, [*make_args(corpora[task]), "--ckpt_path", "last"]))
    assert_same_weights(final_state(tmp_path, logs), final_state(uninterrupted(task), logs))
    assert exports(tmp_path, logs) == exports(uninterrupted(task), logs)


# ---------------------------------------------------------------- in one process: edge cases
class StopAfterFirstEpoch(pl.Callback):
    """Ends the run after its first epoch, as a kill would (the schedules still see 2 epochs)."""

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        trainer.should_stop = True


def fit_in_process(make: Callable[[], tuple[pl.LightningModule, pl.LightningDataModule]],
                   folder: Path, resume: Path | None = None, stop: bool = False,
                   **checkpointing: object) -> pl.LightningModule:
    """Two epochs (or the first only, with ``stop``), a checkpoint ``folder/saved.ckpt``."""
    pl.seed_everything(0, verbose=False)
    task, data = make()
    saver = ModelCheckpoint(dirpath=folder, filename="saved", enable_version_counter=False,
                            **checkpointing)  # type: ignore[arg-type]
    callbacks = [saver, StopAfterFirstEpoch()] if stop else [saver]
    trainer = pl.Trainer(max_epochs=2, accelerator="cpu", logger=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         num_sanity_val_steps=0, callbacks=callbacks)
    trainer.fit(task, data, ckpt_path=resume)
    return task


@pytest.mark.parametrize("workers", [0, 1])
def test_resuming_after_an_epoch_with_dataloader_workers_trains_the_same_next_epoch(
    corpora: dict[str, Path], tmp_path: Path, workers: int
) -> None:
    """Workers draw the epoch's order as the iterator starts, before Lightning's set_epoch: the
    order must already be the next epoch's, not the finished one's (which the saved position
    would then skip entirely)."""

    def make() -> tuple[pl.LightningModule, pl.LightningDataModule]:
        data = SkipGramDataModule(str(corpora["skipgram"]), min_count=1, batch_size=2000,
                                  num_workers=workers)
        return SkipGramTask(data.vocab_size, dim=8, threads=1, diagnostics_every=0), data

    whole = fit_in_process(make, tmp_path / "whole")
    fit_in_process(make, tmp_path / "first", stop=True)
    resumed = fit_in_process(make, tmp_path / "resumed", tmp_path / "first/saved.ckpt")
    assert torch.equal(resumed.word_vectors(), whole.word_vectors())


def test_a_checkpoint_after_an_epochs_last_batch_resumes_at_the_next_epoch(
    corpora: dict[str, Path], tmp_path: Path
) -> None:
    """Saved in the last batch's on_train_batch_end (a signal, or every_n_train_steps that
    divides the epoch): the next epoch is whole and starts from a fresh LSTM state."""

    def make() -> tuple[pl.LightningModule, pl.LightningDataModule]:
        data = LanguageModelDataModule(str(corpora["lm"]), min_count=1, batch_size=4,
                                       eval_batch_size=2, bptt=8)
        task = LanguageModelTask(data.vocab_size, dim=16, hidden_size=16,
                                 num_layers=1, dropout=0.3, num_negatives=4)
        return task, data

    whole = fit_in_process(make, tmp_path / "whole")
    data = make()[1]
    data.setup("fit")
    per_epoch = len(data.train_dataloader())
    fit_in_process(make, tmp_path / "first", stop=True, every_n_train_steps=per_epoch,
                   save_on_train_epoch_end=False)
    saved = torch.load(tmp_path / "first/saved.ckpt", weights_only=True)
    assert saved["global_step"] == per_epoch and saved["nslightning_train_hidden"] is None
    resumed = fit_in_process(make, tmp_path / "resumed", tmp_path / "first/saved.ckpt")
    assert_same_weights(resumed.state_dict(), whole.state_dict())
