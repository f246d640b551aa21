"""Runs never destroy each other's results: one folder per run, exports that refuse to replace a
file, atomic checkpoints, and ``--ckpt_path last`` finding the newest run's checkpoint."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from pytorch_lightning.plugins.io import TorchCheckpointIO

from nslightning.atomic import atomic_write, temporary_prefix
from nslightning.callbacks import Word2VecExport
from nslightning.checkpoint_io import AtomicCheckpointIO
from nslightning.cli import build_cli, main
from nslightning.loggers import CSVLogger
from nslightning.run_folders import latest_last_checkpoint
from tests.cli_args import tiny_args


def test_two_loggers_started_at_once_claim_different_run_folders(tmp_path: Path) -> None:
    first = CSVLogger(tmp_path, name="logs")
    second = CSVLogger(tmp_path, name="logs")
    assert (first.version, second.version) == (0, 1)  # Lightning's would give 0 and 0
    assert (tmp_path / "logs/version_0").is_dir() and (tmp_path / "logs/version_1").is_dir()
    assert CSVLogger(tmp_path, name="logs", version=7).version == 7


def test_a_second_run_in_the_same_folder_keeps_the_first_runs_files(
    topic_corpus_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    main(["fit", *tiny_args(topic_corpus_file), "--trainer.max_epochs", "1"])
    first = tmp_path / "outputs/skipgram/logs/version_0"
    saved = {path: path.read_bytes() for path in first.rglob("*") if path.is_file()}
    assert {"vectors.txt", "vectors.txt.vocab.tsv", "last.ckpt", "metrics.csv"} <= {
        path.name for path in saved}
    main(["fit", *tiny_args(topic_corpus_file), "--trainer.max_epochs", "1", "--model.dim", "4"])
    second = tmp_path / "outputs/skipgram/logs/version_1"
    assert (second / "vectors.txt").read_text().splitlines()[0] == "32 4"
    assert (second / "checkpoints/last.ckpt").exists()
    assert {path: path.read_bytes() for path in saved} == saved


def test_an_export_path_without_run_dir_is_not_replaced(
    topic_corpus_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "vectors.txt").write_text("an earlier run's vectors\n")
    literal = [
        "--trainer.callbacks.init_args.path", str(tmp_path / "vectors.txt"),
    ]
    with pytest.raises(FileExistsError, match="overwrite: true"):
        main(["fit", *tiny_args(topic_corpus_file), *literal])
    assert (tmp_path / "vectors.txt").read_text() == "an earlier run's vectors\n"
    assert not list(tmp_path.glob("outputs/skipgram/logs/*/checkpoints/*")), "it trained"
    main(["fit", *tiny_args(topic_corpus_file), *literal,
          "--trainer.callbacks.init_args.overwrite", "true"])
    assert (tmp_path / "vectors.txt").read_text().startswith("32 8\n")


def test_a_file_that_appears_while_writing_is_not_replaced(tmp_path: Path) -> None:
    target = tmp_path / "vectors.txt"
    with pytest.raises(FileExistsError, match="exists"), atomic_write(
        target, "w", replace=False
    ) as handle:
        handle.write("mine")
        target.write_text("another run's")  # written meanwhile by a concurrent run
    assert target.read_text() == "another run's"
    assert [path.name for path in tmp_path.iterdir()] == ["vectors.txt"]  # no temporary left


def test_temporaries_of_dead_writers_are_removed_and_others_kept(tmp_path: Path) -> None:
    target = tmp_path / "vectors.txt"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    host = socket.gethostname().replace(".", "-").replace("/", "-")
    stale = tmp_path / f".vectors.txt.{host}-{dead.stdout.strip()}.abc.tmp"
    live = tmp_path / f"{temporary_prefix(target)}def.tmp"  # this process: still writing
    other_host = tmp_path / f".vectors.txt.elsewhere-{dead.stdout.strip()}.ghi.tmp"
    for path in (stale, live, other_host):
        path.write_text("partial")
    with atomic_write(target, "w") as handle:
        handle.write("whole")
    assert not stale.exists()
    assert live.exists() and other_host.exists()
    assert target.read_text() == "whole"


class Unpicklable:
    def __reduce__(self) -> tuple:
        raise RuntimeError("disk full")  # what a failure part-way through the write looks like


def test_a_failed_checkpoint_write_leaves_the_previous_checkpoint_whole(tmp_path: Path) -> None:
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"step": 1, "weights": torch.ones(3)}, path)
    with pytest.raises(RuntimeError, match="disk full"):
        io.save_checkpoint({"step": 2, "weights": torch.zeros(1000), "bad": Unpicklable()}, path)
    assert torch.load(path, weights_only=True)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]
    with pytest.raises(RuntimeError, match="disk full"):  # Lightning's leaves half a file
        TorchCheckpointIO().save_checkpoint({"bad": Unpicklable()}, path)


def test_the_cli_writes_checkpoints_atomically(topic_corpus_file: Path) -> None:
    cli = build_cli(tiny_args(topic_corpus_file), run=False)
    assert isinstance(cli.trainer.strategy.checkpoint_io, AtomicCheckpointIO)


def test_ckpt_path_last_is_the_newest_runs_last_checkpoint(
    topic_corpus_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    runs = tmp_path / "outputs/skipgram/logs"
    assert latest_last_checkpoint(runs) is None
    # none yet: the run starts afresh (a requeued job can always pass --ckpt_path last)
    main(["fit", *tiny_args(topic_corpus_file), "--trainer.max_epochs", "1",
          "--ckpt_path", "last"])
    first = runs / "version_0/checkpoints/last.ckpt"
    assert torch.load(first, weights_only=True)["epoch"] == 0
    steps = torch.load(first, weights_only=True)["global_step"]
    main(["fit", *tiny_args(topic_corpus_file), "--ckpt_path", "last"])  # 2 epochs in all
    second = runs / "version_1/checkpoints/last.ckpt"
    resumed = torch.load(second, weights_only=True)
    assert (resumed["epoch"], resumed["global_step"]) == (1, 2 * steps)  # one more epoch
    os.utime(first, (1, 1))
    assert latest_last_checkpoint(runs) == second


def test_signal_handlers_are_as_before_after_a_fit(
    topic_corpus_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    before = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGUSR1)}
    main(["fit", *tiny_args(topic_corpus_file), "--trainer.max_epochs", "1"])
    assert {number: signal.getsignal(number) for number in before} == before


def test_each_export_file_is_protected_unless_it_is_in_the_run_folder() -> None:
    assert Word2VecExport().replaces() == (True, True)
    mixed = Word2VecExport("{run_dir}/vectors.txt", vocabulary_path="vocab.tsv")
    assert mixed.replaces() == (True, False)
    assert Word2VecExport("vectors.txt", overwrite=True).replaces() == (True, True)


def test_without_hard_links_a_commit_still_refuses_an_existing_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(source: object, target: object) -> None:
        raise PermissionError("hard links are not supported here")

    monkeypatch.setattr(os, "link", no_links)
    target = tmp_path / "vocab.tsv"
    with atomic_write(target, "w", replace=False) as handle:
        handle.write("first")
    assert target.read_text() == "first"
    with pytest.raises(FileExistsError), atomic_write(target, "w", replace=False) as handle:
        handle.write("second")
    assert target.read_text() == "first"
    assert [path.name for path in tmp_path.iterdir()] == ["vocab.tsv"]
