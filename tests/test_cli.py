"""Every shipped config runs a few steps on tiny data; the sampler swaps from the command line."""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
import torch
import wandb
from gensim.models import KeyedVectors

from nslightning.cli import NSLightningCLI, build_cli, main
from nslightning.samplers import UniformSampler, UnigramSampler
from tests.cli_args import tiny_args
from tests.loggers.wandb_records import read_offline_run

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"


def test_fit_trains_evaluates_logs_and_exports(
    topic_corpus_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    main(["fit", *tiny_args(topic_corpus_file)])
    vectors = KeyedVectors.load_word2vec_format(
        str(tmp_path / "outputs/skipgram/logs/version_0/vectors.txt")
    )
    assert len(vectors) == 32 and vectors.vector_size == 8
    assert (tmp_path / "outputs/skipgram/logs/version_0/vectors.txt.vocab.tsv").exists()
    metrics_file = next((tmp_path / "outputs/skipgram/logs").glob("version_*/metrics.csv"))
    with open(metrics_file, encoding="utf-8") as handle:
        columns = set(next(csv.reader(handle)))
    assert {"train/loss", "train/lr", "train/words_per_s", "val/ws353", "val/simlex",
            "val/analogy"} <= columns
    assert (tmp_path / "outputs/skipgram/logs/version_0/checkpoints/last.ckpt").exists()


@pytest.mark.parametrize(
    ("swap", "expected", "power"),
    [
        (["--model.sampler", "UniformSampler"], UniformSampler, None),
        (["--model.sampler.power", "0.5"], UnigramSampler, 0.5),
        (["--model.sampler", str(CONFIGS / "samplers/uniform.yaml")], UniformSampler, None),
        (["--model.sampler", str(CONFIGS / "samplers/unigram.yaml")], UnigramSampler, 0.75),
    ],
)
def test_sampler_swap(topic_corpus_file: Path, swap: list[str], expected: type, power) -> None:
    cli = build_cli(tiny_args(topic_corpus_file) + swap, run=False)
    assert type(cli.model.sampler) is expected
    if power is not None:
        assert cli.model.sampler.power == power
    assert cli.model.vocab_size == cli.datamodule.vocab_size == 32


def check_exported_vectors(path: Path, cli: NSLightningCLI, initial: torch.Tensor) -> None:
    """The file holds the trained input table (word2vec's syn0), row by row of the vocabulary,
    and every word of the corpus moved from its initial vector."""
    vectors = KeyedVectors.load_word2vec_format(str(path))
    assert len(vectors) == 32 and vectors.vector_size == 8
    tokens = cli.datamodule.vocabulary.tokens
    assert list(vectors.index_to_key) == list(tokens)
    trained = cli.model.embeddings.input.weight.detach().numpy()
    np.testing.assert_allclose(vectors.vectors, trained, rtol=1e-5, atol=1e-7)
    assert (trained != initial.numpy()).any(axis=1).all()


@pytest.mark.parametrize(
    ("swap", "expected", "engine"),
    [
        (["--model.optimizer", "torch.optim.Adagrad"], torch.optim.Adagrad, "autograd"),
        (["--model.optimizer", "torch.optim.SGD"], torch.optim.SGD, "fused"),
        (["--model.optimizer", "torch.optim.Adam", "--model.sparse", "false"], torch.optim.Adam,
         "autograd"),
    ],
)
def test_optimizer_swap_trains(
    topic_corpus_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, swap: list[str],
    expected: type, engine: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    args = [*tiny_args(topic_corpus_file), "--trainer.max_epochs", "1", *swap]
    initial = build_cli(args, run=False).model.embeddings.input.weight.detach().clone()
    cli = build_cli(["fit", *args])
    (optimizer,) = cli.trainer.optimizers
    assert type(optimizer) is expected and cli.model.engine_in_use == engine
    if engine == "autograd":  # every update stepped the optimizer with both tables' gradients
        tables = [cli.model.embeddings.input.weight, cli.model.embeddings.output.weight]
        steps = {int(optimizer.state[table]["step"]) for table in tables}
        assert steps == {cli.trainer.global_step} and cli.trainer.global_step > 0
    check_exported_vectors(tmp_path / "outputs/skipgram/logs/version_0/vectors.txt", cli, initial)


@pytest.mark.parametrize("optimizer", ["torch.optim.Adam", "torch.optim.Adagrad"])
def test_an_optimizer_the_fused_engine_would_ignore_is_a_clear_error(
    topic_corpus_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, optimizer: str
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"would be ignored.*--model\.engine autograd"):
        main(["fit", *tiny_args(topic_corpus_file), "--model.optimizer", optimizer,
              "--model.sparse", "false", "--model.engine", "fused"])


@pytest.mark.parametrize(
    "swap",
    [
        ["--model.optimizer", "torch.optim.Adam"],
        ["--model.optimizer", "torch.optim.SparseAdam"],
        ["--model.optimizer", "torch.optim.SGD", "--model.optimizer.momentum", "0.9"],
        ["--model.optimizer", "torch.optim.Adagrad", "--model.optimizer.weight_decay", "0.1"],
    ],
)
def test_optimizer_unfit_for_sparse_embeddings_is_a_clear_error(
    topic_corpus_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, swap: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"cannot train sparse embeddings.*--model\.sparse false"):
        main(["fit", *tiny_args(topic_corpus_file), *swap, "--model.engine", "autograd"])


def test_bad_power_from_the_command_line_is_a_clear_error(topic_corpus_file: Path) -> None:
    with pytest.raises(ValueError, match="power must be in"):
        build_cli([*tiny_args(topic_corpus_file), "--model.sampler.power", "-1"], run=False)


def test_wandb_logger_config_runs_offline(
    topic_corpus_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    args = [*tiny_args(topic_corpus_file), "--trainer.max_epochs", "1",
            "--trainer.logger", str(CONFIGS / "loggers/wandb.yaml")]
    initial = build_cli(args, run=False).model.embeddings.input.weight.detach().clone()
    try:
        cli = build_cli(["fit", *args])
    finally:
        wandb.finish()  # Lightning leaves the run open: a later test's logger would reuse it
    (run_dir,) = (tmp_path / "outputs/wandb").glob("offline-run-*")
    run = read_offline_run(run_dir)
    assert run.run_id == cli.trainer.logger.version and run_dir.name.endswith(run.run_id)
    assert run.config["model"]["init_args"]["dim"] == 8
    # one train/loss row per step (log_every_n_steps 1), the last one the task's last loss
    rows = [row for row in run.history if "train/loss" in row]
    assert [row["trainer/global_step"] for row in rows] == list(range(cli.trainer.global_step))
    losses = [row["train/loss"] for row in rows]
    assert all(math.isfinite(loss) and loss > 0 for loss in losses)
    assert losses[-1] == pytest.approx(cli.trainer.callback_metrics["train/loss"].item())
    assert run.summary["train/loss"] == {"min": min(losses)}  # the best value, not the last
    # the vectors go to the W&B run's own folder: <save_dir>/<project>/<run id>
    check_exported_vectors(tmp_path / "outputs/nslightning" / run.run_id / "vectors.txt", cli,
                           initial)


def test_csv_logger_fragment(topic_corpus_file: Path, tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    main(["fit", *tiny_args(topic_corpus_file), "--trainer.max_epochs", "1",
          "--trainer.logger", str(CONFIGS / "loggers/csv.yaml")])
    assert list((tmp_path / "outputs/csv").glob("version_*/metrics.csv"))


def test_python_dash_m_and_console_script_help() -> None:
    # this environment's own script (or a user install's), whether or not it is on PATH
    folders = [sysconfig.get_path("scripts"), sysconfig.get_path("scripts", f"{os.name}_user")]
    scripts = [Path(folder) / "nslightning" for folder in folders]
    script = next((path for path in scripts if path.is_file()), None)
    assert script is not None, f"no console script in {folders}: reinstall with pip install -e ."
    for command in ([sys.executable, "-m", "nslightning"], [str(script)]):
        result = subprocess.run([*command, "fit", "--help"], capture_output=True, text=True,
                                check=True)
        # both go through the command line's main(): its help ends with the task's options
        assert "--trainer.max_epochs" in result.stdout
        assert "nslightning fit --model.help SkipGramTask" in result.stdout


SAMPLER_CONFIGS = sorted((CONFIGS / "samplers").glob("*.yaml"))
TINY_OVERRIDES = {  # the 32-word test vocabulary is smaller than these configs assume
    "hard_negative_index.yaml": ["--model.sampler.pool_size", "8"],
    "memory_bank.yaml": ["--model.sampler.size", "128"],
}


@pytest.mark.parametrize("engine", ["fused", "autograd"])
@pytest.mark.parametrize("config", SAMPLER_CONFIGS, ids=[c.stem for c in SAMPLER_CONFIGS])
def test_every_sampler_config_trains_from_the_command_line(
    topic_corpus_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config: Path,
    engine: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    args = [*tiny_args(topic_corpus_file), "--trainer.max_epochs", "1",
            "--model.sampler", str(config), *TINY_OVERRIDES.get(config.name, []),
            "--model.diagnostics_every", "2", "--model.engine", engine]
    main(["fit", *args])
    cli = build_cli(args, run=False)
    assert type(cli.model.sampler).__module__.startswith("nslightning.samplers")
    metrics_file = next((tmp_path / "outputs/skipgram/logs").glob("version_*/metrics.csv"))
    with open(metrics_file, encoding="utf-8") as handle:
        columns = set(next(csv.reader(handle)))
    assert {"sampler/hit_rate", "sampler/unique_fraction", "sampler/score_gap",
            "train/loss"} <= columns


# ----------------------------------------------------------------- the contrastive configs
def contrastive_args(config: str, *extra: str) -> list[str]:
    return [
        "-c", str(CONFIGS / config), "--trainer.max_epochs", "1",
        "--trainer.limit_train_batches", "3", "--trainer.check_val_every_n_epoch", "1",
        "--trainer.log_every_n_steps", "1", "--trainer.enable_progress_bar", "false",
        "--model.dim", "8", "--model.diagnostics_every", "1", *extra,
    ]


def metric_columns(folder: Path) -> set[str]:
    metrics_file = next(folder.glob("version_*/metrics.csv"))
    with open(metrics_file, encoding="utf-8") as handle:
        return set(next(csv.reader(handle)))


def test_contrastive_config_trains_on_the_lee_relation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    main(["fit", *contrastive_args("contrastive.yaml")])
    columns = metric_columns(tmp_path / "outputs/contrastive/logs")
    assert {"train/loss", "train/lam", "val/mrr", "val/mean_rank", "val/map", "val/hits@10",
            "val/lee_pearson", "val/lee_spearman", "sampler/hit_rate"} <= columns
    documents = KeyedVectors.load_word2vec_format(
        str(tmp_path / "outputs/contrastive/logs/version_0/documents.txt")
    )
    assert len(documents) == 350 and "lee:49" in documents and documents.vector_size == 8


def test_inductive_config_encodes_held_out_documents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    args = contrastive_args("contrastive_inductive.yaml")
    initial = build_cli(args, run=False).model.embeddings.anchor_encoder.bag.weight.clone()
    cli = build_cli(["fit", *args])
    assert cli.datamodule.num_anchors == 300  # the 50 judged documents are not trained on
    assert "lee:0" not in cli.datamodule.anchor_vocabulary
    encoder = cli.model.embeddings.anchor_encoder
    assert type(encoder).__name__ == "BagOfFeatures"
    assert not torch.equal(encoder.bag.weight.detach(), initial)  # the encoder trained
    metrics = next((tmp_path / "outputs/inductive/logs").glob("version_*/metrics.csv"))
    with open(metrics, encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    pearson = [float(row["val/lee_pearson"]) for row in rows if row.get("val/lee_pearson")]
    assert len(pearson) == 1 and 0.0 < pearson[0] <= 1.0  # 3 steps already correlate


def test_pairs_config_trains_on_a_user_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(
        "child,parent\n" + "".join(f"n{i},n{i // 2}\nn{i},n0\n" for i in range(2, 40)),
        encoding="utf-8",
    )
    main(["fit", *contrastive_args(
        "contrastive_pairs.yaml", "--data.path", str(pairs), "--data.header", "true"
    )])
    columns = metric_columns(tmp_path / "outputs/pairs/logs")
    assert {"train/loss", "val/mrr", "val/map", "val/mean_rank"} <= columns
    vectors = KeyedVectors.load_word2vec_format(
        str(tmp_path / "outputs/pairs/logs/version_0/vectors.txt")
    )
    assert len(vectors) == 40 and vectors.vector_size == 8


@pytest.mark.parametrize(
    ("fragment", "class_name"),
    [
        ("weighted.yaml", "WeightedContrastiveLoss"),
        ("weighted_warmup.yaml", "WeightedContrastiveLoss"),
        ("info_nce.yaml", "InfoNCELoss"),
        ("debiased.yaml", "DebiasedContrastiveLoss"),
        ("hard_reweighted.yaml", "HardNegativeContrastiveLoss"),
    ],
)
def test_loss_swap(fragment: str, class_name: str) -> None:
    cli = build_cli(
        contrastive_args("contrastive.yaml", "--model.loss", str(CONFIGS / "losses" / fragment)),
        run=False,
    )
    assert type(cli.model.loss).__name__ == class_name
    assert cli.model.vocab_size == cli.datamodule.vocab_size
    assert cli.model.embeddings.num_anchors == cli.datamodule.num_anchors == 350


def test_missing_pair_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"pair file .* not found"):
        build_cli(
            contrastive_args("contrastive_pairs.yaml", "--data.path", str(tmp_path / "no.tsv")),
            run=False,
        )
