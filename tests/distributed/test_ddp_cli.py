"""Each task trains with ``--trainer.strategy ddp`` on 2 CPU processes (gloo), from the command
line as users run it, with the shipped configs/trainer/ddp.yaml."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from gensim.models import KeyedVectors

from tests.corpora import pattern_text
from tests.distributed.processes import (
    CONFIGS,
    RECORD_STEPS,
    TWO_PROCESSES,
    environment,
    last,
    logged,
    nslightning,
)


@pytest.mark.parametrize(
    ("engine", "bounds"),
    [("fused", ["--trainer.max_epochs", "2"]),
     # exchanges every 3 chunks, stopped by max_steps mid-epoch: the end still merges
     ("fused", ["--trainer.max_epochs", "2", "--model.sync_every", "3",
                "--trainer.max_steps", "5"]),
     ("autograd", ["--trainer.max_epochs", "2"])],
    ids=["fused", "fused-sync_every-3-max_steps", "autograd"],
)
def test_skipgram_trains_on_two_processes(
    topic_corpus_file: Path, tmp_path: Path, engine: str, bounds: list[str]
) -> None:
    steps = tmp_path / "steps"
    nslightning(
        tmp_path, "fit", "-c", str(CONFIGS / "skipgram.yaml"), *TWO_PROCESSES,
        "--data.corpus", str(topic_corpus_file), "--data.min_count", "1",
        "--data.batch_size", "500", "--model.dim", "8", *bounds,
        "--trainer.log_every_n_steps", "1", "--model.engine", engine,
        f"--trainer.callbacks+={RECORD_STEPS}", f"--trainer.callbacks.folder={steps}",
    )
    # both ranks end with the same tables: each holds every rank's updates
    first, second = (torch.load(steps / f"rank{rank}.pt", weights_only=False) for rank in (0, 1))
    assert first["global_step"] == second["global_step"] > 0
    for name, table in first["end"].items():
        assert torch.equal(table, second["end"][name]), name
        assert not torch.equal(table, first["start"][name]), name
    # the logged pair counts are summed over the ranks: every pair of both ranks' batches
    rows = logged(tmp_path / "outputs/skipgram/logs")
    pairs = sum(int(batch["mask"].sum()) for rank in (first, second) for batch in rank["batches"])
    assert sum(float(row["train/pairs"]) for row in rows if row.get("train/pairs")) == pairs
    assert last(rows, "train/loss") > 0 and last(rows, "train/words_per_s") > 0
    assert "val/ws353" in rows[0]
    # export once, on rank 0: a complete file of the final input vectors, in vocabulary order
    vectors = KeyedVectors.load_word2vec_format(
        str(tmp_path / "outputs/skipgram/logs/version_0/vectors.txt")
    )
    assert len(vectors) == 32
    torch.testing.assert_close(torch.from_numpy(vectors.vectors),
                               first["end"]["embeddings.input.weight"], rtol=1e-5, atol=1e-6)


def test_contrastive_trains_and_validates_as_one_process(tmp_path: Path) -> None:
    common = [
        "-c", str(CONFIGS / "contrastive.yaml"), "--model.dim", "8",
        "--trainer.enable_progress_bar", "false", "--trainer.log_every_n_steps", "1",
        "--model.sampler", str(CONFIGS / "samplers/in_batch.yaml"),
        "--model.sampler.init_args.across_ranks", "true",
    ]
    nslightning(
        tmp_path, "fit", *common, *TWO_PROCESSES, "--trainer.max_epochs", "1",
        "--trainer.check_val_every_n_epoch", "1",
    )
    checkpoint = next((tmp_path / "outputs/contrastive/logs").glob("version_0/checkpoints/*"))
    fitted = logged(tmp_path / "outputs/contrastive/logs")
    # The same checkpoint evaluated by 2 processes and by 1: nothing counted twice or missed.
    nslightning(tmp_path, "validate", *common, *TWO_PROCESSES, "--ckpt_path", str(checkpoint))
    two = logged(tmp_path / "outputs/contrastive/logs")
    nslightning(tmp_path, "validate", *common, "--ckpt_path", str(checkpoint))
    one = logged(tmp_path / "outputs/contrastive/logs")
    # ... and what the two processes logged while fitting (the checkpoint is saved after it)
    for key in ("val/mrr", "val/map", "val/mean_rank", "val/hits@10"):
        assert last(two, key) == pytest.approx(last(one, key), rel=1e-5)
        assert last(fitted, key) == pytest.approx(last(one, key), rel=1e-5)


def test_language_model_trains_on_two_processes(tmp_path: Path) -> None:
    text = pattern_text(tmp_path / "text.txt", lines=120)
    nslightning(
        tmp_path, "fit", "-c", str(CONFIGS / "lm.yaml"), *TWO_PROCESSES,
        "--data.corpus", str(text), "--data.min_count", "1", "--data.batch_size", "4",
        "--data.eval_batch_size", "2", "--data.bptt", "8", "--model.dim", "16",
        "--model.hidden_size", "16", "--model.num_negatives", "4", "--trainer.max_epochs", "2",
    )
    rows = logged(tmp_path / "outputs/lm/logs")
    assert 1 < last(rows, "val/ppl") < 14  # below the 14-token uniform model
    assert (tmp_path / "outputs/lm/logs/version_0/checkpoints/best.ckpt").exists()


def test_sigterm_stops_both_processes_at_one_step_with_a_checkpoint_that_resumes(
    tmp_path: Path,
) -> None:
    """Rank 0 gets the signal (as from a scheduler); rank 1 learns it from rank 0, both save
    the same step, both exit; ``--ckpt_path last`` then finishes the run."""
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("\n".join(f"a{i}\tb{(i * 7 + j) % 300}" for i in range(2000)
                               for j in range(5)) + "\n", encoding="utf-8")
    args = [
        "fit", "-c", str(CONFIGS / "contrastive_pairs.yaml"), *TWO_PROCESSES,
        "--data.path", str(pairs), "--data.batch_size", "16", "--model.dim", "8",
        "--model.num_negatives", "4", "--trainer.max_epochs", "3",
        "--trainer.callbacks+=nslightning.callbacks.Preemption",
        "--trainer.callbacks.ddp_check_every", "2",
    ]
    run = subprocess.Popen([sys.executable, "-m", "nslightning", *args], cwd=tmp_path,
                           env=environment(),
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    checkpoints = tmp_path / "outputs/pairs/logs/version_0/checkpoints"
    while not (checkpoints / "last.ckpt").exists():
        assert run.poll() is None, run.communicate()[1][-4000:]
        time.sleep(0.01)
    first = torch.load(checkpoints / "last.ckpt", weights_only=True)["global_step"]
    run.send_signal(signal.SIGTERM)
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == 128 + signal.SIGTERM, stderr[-4000:]
    assert "stopped by SIGTERM" in stderr.strip().splitlines()[-1]
    saved = torch.load(checkpoints / "last.ckpt", weights_only=True)
    assert saved["global_step"] > first
    nslightning(tmp_path, *args, "--ckpt_path", "last")
    (resumed,) = tmp_path.glob("outputs/pairs/logs/version_1/checkpoints/last.ckpt")
    finished = torch.load(resumed, weights_only=True)
    assert finished["epoch"] == 2 and finished["global_step"] > saved["global_step"]
