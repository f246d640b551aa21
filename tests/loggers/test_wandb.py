"""W&B offline in a temporary folder: what a run records, read back from its run file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import wandb
from gensim.test.utils import datapath

from nslightning.cli import continue_wandb_run, main
from nslightning.loggers import WANDB_RUN_ID, WandbLogger, wandb_logged_in
from tests.loggers.wandb_records import OfflineRun, read_offline_run

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
WANDB = ["--trainer.logger", str(CONFIGS / "loggers/wandb.yaml"),
         "--trainer.enable_progress_bar", "false", "--trainer.log_every_n_steps", "1"]


def fit(*args: str) -> None:
    try:
        main(["fit", *args, *WANDB])  # after the config, which sets a CSV logger
    finally:
        wandb.finish()  # Lightning leaves the run open for later calls; each test run is new


def runs(folder: Path) -> list[Path]:
    return sorted((folder / "outputs/wandb").glob("offline-run-*"))


def skipgram(*extra: str) -> list[str]:
    return [
        "-c", str(CONFIGS / "skipgram.yaml"), "--data.corpus", datapath("lee_background.cor"),
        "--data.min_count", "2", "--model.dim", "16", "--trainer.max_epochs", "1",
        "--model.diagnostics_every", "5", *extra,
    ]


def table(run_dir: Path, run: OfflineRun, key: str) -> dict:
    """A logged table's JSON file, read back."""
    rows = [row for row in run.history if f"{key}/path" in row]
    assert rows, f"no table {key}"
    assert rows[-1][f"{key}/_type"] == "table-file"
    return json.loads((run_dir / "files" / rows[-1][f"{key}/path"]).read_text(encoding="utf-8"))


def test_skipgram_run_records_curves_diagnostics_tables_and_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fit(*skipgram())
    (run_dir,) = runs(tmp_path)
    run = read_offline_run(run_dir)
    keys = run.history_keys
    assert {"train/loss", "train/lr", "train/words_per_s", "val/ws353", "val/simlex",
            "sampler/hit_rate", "sampler/unique_fraction", "sampler/score_gap"} <= keys
    for histogram in ("sampler/pos_scores", "sampler/neg_scores", "sampler/rank_hist"):
        assert any(row.get(f"{histogram}/_type") == "histogram" for row in run.history)
    neighbours = table(run_dir, run, "val/neighbours")
    assert neighbours["columns"] == ["word", "nearest neighbours"]
    assert {row[0] for row in neighbours["data"]} >= {"war", "good"}
    projector = table(run_dir, run, "embeddings/words")
    assert projector["columns"] == ["token", "count", "vector"]
    assert len(projector["data"]) == 1000 and len(projector["data"][0][2]) == 16
    counts = [row[1] for row in projector["data"]]
    assert counts == sorted(counts, reverse=True)
    # the full resolved config, and the YAML file in the run
    assert run.config["model"]["class_path"] == "nslightning.tasks.SkipGramTask"
    assert run.config["model"]["init_args"]["dim"] == 16
    assert run.config["data"]["init_args"]["min_count"] == 2
    assert run.config["trainer"]["max_epochs"] == 1
    assert "SkipGramTask" in (run_dir / "files/lightning_config.yaml").read_text()
    # best-value summaries
    assert run.metrics["val/ws353"].summary.max
    assert run.metrics["val/ppl"].summary.min
    assert "max" in run.summary["val/ws353"]


def test_a_second_run_in_the_same_folder_does_not_fail(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fit(*skipgram("--data.min_count", "5"))
    fit(*skipgram("--data.min_count", "5"))
    first, second = (read_offline_run(path) for path in runs(tmp_path))
    assert first.run_id != second.run_id
    assert first.config["data"]["init_args"]["min_count"] == 5 == second.config["data"][
        "init_args"]["min_count"]


def test_resuming_from_a_checkpoint_continues_the_same_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fit(*skipgram("--data.min_count", "5"))
    (first,) = runs(tmp_path)
    run_id = read_offline_run(first).run_id
    (checkpoint,) = (tmp_path / "outputs/nslightning" / run_id / "checkpoints").glob("*.ckpt")
    assert torch.load(checkpoint, weights_only=False)[WANDB_RUN_ID] == run_id
    fit(*skipgram("--data.min_count", "5", "--trainer.max_epochs", "2"),
        "--ckpt_path", str(checkpoint))
    resumed = [path for path in runs(tmp_path) if path != first]
    assert resumed and read_offline_run(resumed[0]).run_id == run_id


def test_contrastive_run_records_hardness_and_score_histograms(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fit("-c", str(CONFIGS / "contrastive.yaml"), "--trainer.max_epochs", "1",
        "--trainer.limit_train_batches", "3", "--trainer.check_val_every_n_epoch", "1",
        "--model.dim", "8", "--model.diagnostics_every", "1")
    (run_dir,) = runs(tmp_path)
    run = read_offline_run(run_dir)
    assert {"sampler/hard_share", "sampler/hit_rate", "val/mrr", "val/lee_pearson",
            "train/pairs_per_s"} <= run.history_keys
    assert any(row.get("sampler/neg_scores/_type") == "histogram" for row in run.history)
    assert len(table(run_dir, run, "embeddings/anchors")["data"]) == 350


# ---------------------------------------------------------------- online or offline
def test_offline_unless_credentials_are_found(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("NETRC", raising=False)
    monkeypatch.delenv("WANDB_BASE_URL", raising=False)
    assert not wandb_logged_in()
    assert WandbLogger(project="p", save_dir=str(tmp_path))._offline
    (tmp_path / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password key\n")
    (tmp_path / ".netrc").chmod(0o600)
    assert wandb_logged_in()
    assert not WandbLogger(project="p", save_dir=str(tmp_path))._offline
    assert WandbLogger(project="p", save_dir=str(tmp_path), offline=True)._offline
    (tmp_path / ".netrc").unlink()
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert wandb_logged_in()


def test_best_values_must_be_min_or_max(tmp_path):
    with pytest.raises(ValueError, match="'min' or 'max'"):
        WandbLogger(save_dir=str(tmp_path), best_values={"val/ppl": "lowest"})


def test_a_missing_checkpoint_is_a_clear_error(tmp_path):
    from jsonargparse import Namespace

    config = Namespace(
        ckpt_path=str(tmp_path / "nope.ckpt"),
        trainer=Namespace(logger=Namespace(
            class_path="nslightning.loggers.WandbLogger", init_args=Namespace(id=None)
        )),
    )
    with pytest.raises(FileNotFoundError, match="--ckpt_path"):
        continue_wandb_run(config)
