"""configs/lm.yaml from the command line: fit, the best checkpoint, test, and the swaps."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from nslightning.cli import main
from tests.corpora import pattern_text

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def lm_args(command: str, corpus: Path, *extra: str) -> list[str]:
    return [
        command, "-c", str(CONFIGS / "lm.yaml"),
        "--data.corpus", str(corpus), "--data.min_count", "1", "--data.batch_size", "4",
        "--data.eval_batch_size", "2", "--data.bptt", "8",
        "--model.dim", "16", "--model.hidden_size", "16", "--model.num_negatives", "4",
        "--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false",
        *extra,
    ]


def logged(folder: Path) -> list[dict[str, str]]:
    metrics = sorted(folder.glob("version_*/metrics.csv"))[-1]
    with metrics.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_fit_keeps_the_best_checkpoint_and_test_reports_the_perplexity(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    corpus = pattern_text(tmp_path / "text.txt", lines=80)
    main(lm_args("fit", corpus, "--trainer.max_epochs", "2"))
    rows = logged(tmp_path / "outputs/lm/logs")
    assert any(row["train/loss"] for row in rows)
    validation = [float(row["val/ppl"]) for row in rows if row.get("val/ppl")]
    assert len(validation) == 2
    best = tmp_path / "outputs/lm/logs/version_0/checkpoints/best.ckpt"
    assert best.exists()
    main(lm_args("test", corpus, "--ckpt_path", str(best)))
    tested = [float(row["test/ppl"]) for row in logged(tmp_path / "outputs/lm/logs")
              if row.get("test/ppl")]
    assert len(tested) == 1 and 1.0 < tested[0] < 1e3


@pytest.mark.parametrize(
    "swap",
    [
        ["--model.output", "full"],
        ["--model.output", "negative_sampling"],
        ["--model.output", "nce"],
        ["--model.sampler", str(CONFIGS / "samplers/unigram.yaml")],
        ["--model.sampler", str(CONFIGS / "samplers/uniform.yaml")],
        ["--model.sampler", str(CONFIGS / "samplers/in_batch.yaml"),
         "--model.shared_negatives", "false"],
    ],
)
def test_objective_and_sampler_swaps_train(tmp_path, monkeypatch, swap):
    monkeypatch.chdir(tmp_path)
    main(lm_args("fit", pattern_text(tmp_path / "text.txt"), *swap))
    assert [row for row in logged(tmp_path / "outputs/lm/logs") if row.get("val/ppl")]


def test_more_candidates_than_tokens_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="not below the vocabulary size"):
        main(lm_args("fit", pattern_text(tmp_path / "text.txt"), "--model.num_negatives", "500"))


def test_in_batch_candidates_cannot_be_shared(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    swap = ["--model.sampler", str(CONFIGS / "samplers/in_batch.yaml")]
    with pytest.raises(ValueError, match="shared_negatives false"):
        main(lm_args("fit", pattern_text(tmp_path / "text.txt"), *swap))
