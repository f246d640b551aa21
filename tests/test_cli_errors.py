"""Bad inputs through the real command line: exit 2 (config) or 1 (run time), and a last line
on stderr that names the problem (and the fix), without a traceback.

Every row runs ``python -m nslightning ...`` in a subprocess, in a temporary folder with its own
cache. The subprocesses of the rows that pytest selected start together in a small pool when
the first row's test runs (each one spends seconds importing torch and Lightning), and each
test waits for its own.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from nslightning.cli import build_cli, main
from nslightning.cli_errors import (
    DEBUG_ENV,
    DEBUG_HINT,
    EXIT_CONFIG,
    EXIT_RUN,
    describe,
    parser_kwargs,
)
from tests.corpora import make_topic_corpus

ROOT = Path(__file__).resolve().parents[1]
SKIPGRAM = str(ROOT / "configs" / "skipgram.yaml")
PAIRS = str(ROOT / "configs" / "contrastive_pairs.yaml")
PREFIX = "nslightning: error: "
QUICK = (  # no logger, callbacks, checkpoints nor progress bar: only what the row tests
    "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
    "--trainer.logger", "false", "--trainer.callbacks", "[]",
    "--trainer.enable_checkpointing", "false", "--trainer.enable_progress_bar", "false",
    "--trainer.enable_model_summary", "false",
)
#: jsonargparse's wrapping, which the last line must not repeat.
NOISE = ("Does not validate", "Subtypes", "Given value", "Namespace(", "<class ", "Errors:")
TINY_MODEL = ("--model.dim", "8", "--model.engine", "autograd")
WORKERS = max(2, min(4, os.cpu_count() or 2))
TIMEOUT = 300


def skipgram(*extra: str, corpus: str = "corpus.txt", command: str = "fit") -> tuple[str, ...]:
    return (command, "-c", SKIPGRAM, *QUICK, *TINY_MODEL, "--data.corpus", corpus,
            "--data.min_count", "1", "--data.batch_size", "600", *extra)


def pairs(path: str) -> tuple[str, ...]:
    return ("fit", "-c", PAIRS, *QUICK, "--data.path", path)


@dataclass(frozen=True)
class Row:
    """One command (``{ckpt}``/``{half}`` stand for the trained and the truncated checkpoint),
    its exit code, and a substring of the last stderr line."""

    id: str
    args: tuple[str, ...]
    code: int
    expect: str
    env: tuple[tuple[str, str], ...] = ()
    console_script: bool = False

    @property
    def needs_checkpoint(self) -> bool:
        return any(arg in ("{ckpt}", "{half}") for arg in self.args)

    def __str__(self) -> str:
        return self.id


ROWS = [
    # ------------------------------------------------------------------ corpus
    Row("corpus-empty", skipgram(corpus="empty.txt"), EXIT_CONFIG, "the corpus is empty"),
    Row("corpus-missing", skipgram(corpus="missing.txt"), EXIT_CONFIG,
        "corpus 'missing.txt' not found: give a file, a folder, a glob"),
    Row("corpus-binary", skipgram(corpus="binary.bin"), EXIT_CONFIG,
        "binary.bin is not text: its first bytes hold NUL bytes"),
    Row("corpus-glob-matches-nothing", skipgram(corpus="nothing/*.txt"), EXIT_CONFIG,
        "corpus pattern 'nothing/*.txt' matches no files"),
    # ------------------------------------------------------------------ pair files
    Row("pairs-one-column", pairs("one_column.tsv"), EXIT_CONFIG,
        "one_column.tsv:2: expected 'anchor<TAB>item'"),
    Row("pairs-bad-weight", pairs("bad_weight.tsv"), EXIT_CONFIG,
        "bad_weight.tsv:2: weight 'heavy' is not a number"),
    Row("pairs-empty", pairs("empty.tsv"), EXIT_CONFIG, "empty.tsv holds no pairs"),
    Row("pairs-mixed-columns", pairs("mixed.tsv"), EXIT_CONFIG,
        "mixed.tsv:3: 2 columns where earlier lines have 3; give every line a weight or none"),
    # ------------------------------------------------------------------ config
    Row("unknown-class-cli", skipgram("--model.sampler", "UnigramSamplr"), EXIT_CONFIG,
        "unknown class 'UnigramSamplr' for --model.sampler; did you mean UnigramSampler?"),
    Row("unknown-class-yaml", skipgram("-c", "unknown_class.yaml"), EXIT_CONFIG,
        "unknown class 'nslightning.samplers.UniformSamplr' for --model.sampler; did you mean "
        "nslightning.samplers.UniformSampler?"),
    Row("misspelled-key-cli", skipgram("--model.num_negatvies", "3"), EXIT_CONFIG,
        "unknown option --model.num_negatvies: SkipGramTask has no parameter 'num_negatvies'; "
        "did you mean --model.num_negatives?"),
    Row("misspelled-key-yaml", skipgram("-c", "misspelled_key.yaml"), EXIT_CONFIG,
        "unknown option --model.sampler.powr: UnigramSampler has no parameter 'powr'; did you "
        "mean --model.sampler.power?"),
    Row("dim-negative", skipgram("--model.dim", "-5"), EXIT_CONFIG,
        "dim must be >= 1, got -5"),
    Row("batch-size-zero", skipgram("--data.batch_size", "0"), EXIT_CONFIG,
        "batch_size (tokens per step) must be >= 1, got 0"),
    Row("window-zero", skipgram("--data.window", "0"), EXIT_CONFIG, "window must be >= 1, got 0"),
    Row("power-out-of-range", skipgram("--model.sampler.power", "3"), EXIT_CONFIG,
        "power must be in [0, 2.0], got 3.0"),
    Row("negatives-not-below-vocabulary", skipgram("--model.num_negatives", "40"), EXIT_CONFIG,
        "num_negatives"),
    # ------------------------------------------------------------------ checkpoints
    Row("checkpoint-of-another-vocabulary",
        skipgram("--ckpt_path", "{ckpt}", corpus="other.txt"), EXIT_RUN,
        "the checkpoint was trained with another vocabulary"),
    Row("checkpoint-truncated", skipgram("--ckpt_path", "{half}"), EXIT_RUN,
        "cannot read checkpoint half.ckpt"),
]

DEBUG_ROW = Row("debug-traceback", skipgram("--model.dim", "-5"), EXIT_CONFIG,
                "dim must be >= 1, got -5", env=((DEBUG_ENV, "1"),))
CONSOLE_ROW = Row("console-script", skipgram("--model.num_negatvies", "3"), EXIT_CONFIG,
                  "did you mean --model.num_negatives?", console_script=True)
HELP_ROWS = [
    Row("fit-help", ("fit", "--help"), 0,
        "nslightning fit -c CONFIG.yaml --print_config"),
    Row("model-help", ("fit", "--model.help", "SkipGramTask"), 0, "--model.num_negatives"),
    Row("data-help", ("fit", "--data.help", "SkipGramDataModule"), 0, "--data.corpus"),
]
TRAIN = skipgram("--trainer.enable_checkpointing", "true", "--trainer.default_root_dir", "trained")


# ---------------------------------------------------------------------- inputs and runs
def write_inputs(folder: Path) -> None:
    """The small files the rows read, in ``folder``."""
    folder.joinpath("corpus.txt").write_text(
        "\n".join(" ".join(s) for s in make_topic_corpus(200)) + "\n", encoding="utf-8"
    )
    rng = np.random.default_rng(0)
    other = [" ".join(f"w{i}" for i in rng.integers(0, 50, 12)) for _ in range(200)]
    folder.joinpath("other.txt").write_text("\n".join(other) + "\n", encoding="utf-8")
    folder.joinpath("empty.txt").write_bytes(b"")
    folder.joinpath("binary.bin").write_bytes(b"\x00" + rng.bytes(4095))
    folder.joinpath("one_column.tsv").write_text("a\tb\nc\n", encoding="utf-8")
    folder.joinpath("bad_weight.tsv").write_text("a\tb\t1\nc\td\theavy\n", encoding="utf-8")
    folder.joinpath("empty.tsv").write_bytes(b"")
    folder.joinpath("mixed.tsv").write_text("a\tb\t1\nc\td\t2\ne\tf\n", encoding="utf-8")
    folder.joinpath("unknown_class.yaml").write_text(
        "model:\n  init_args:\n    sampler:\n"
        "      class_path: nslightning.samplers.UniformSamplr\n",
        encoding="utf-8",
    )
    folder.joinpath("misspelled_key.yaml").write_text(
        "model:\n  init_args:\n    sampler:\n      init_args:\n        powr: 0.5\n",
        encoding="utf-8",
    )


def run_cli(
    args: tuple[str, ...], folder: Path, name: str, env: tuple[tuple[str, str], ...] = (),
    console_script: bool = False,
) -> subprocess.CompletedProcess[str]:
    """``python -m nslightning ARGS`` (or the console script) in ``folder``, with a cache of
    its own and W&B offline."""
    environment = {k: v for k, v in os.environ.items() if k != DEBUG_ENV}
    environment.update(
        WANDB_MODE="offline", WANDB_SILENT="true", OMP_NUM_THREADS="1",
        NSLIGHTNING_CACHE=str(folder / "cache" / name), **dict(env),
    )
    if console_script:
        script = shutil.which("nslightning")
        if script is None:
            pytest.skip("the nslightning console script is not installed")
        command = [script, *args]
    else:
        command = [sys.executable, "-m", "nslightning", *args]
    return subprocess.run(
        command, cwd=folder, env=environment, capture_output=True, text=True, timeout=TIMEOUT,
        check=False,
    )


def train_checkpoint(folder: Path) -> None:
    """A two-step run on ``corpus.txt``; leaves ``trained.ckpt`` and ``half.ckpt`` (its first
    half) in ``folder``."""
    result = run_cli(TRAIN, folder, "train")
    assert result.returncode == 0, result.stderr[-3000:]
    saved = next((folder / "trained").rglob("*.ckpt"))
    data = saved.read_bytes()
    (folder / "trained.ckpt").write_bytes(data)
    (folder / "half.ckpt").write_bytes(data[: len(data) // 2])


def run_row(
    row: Row, folder: Path, checkpoint: Future[None] | None
) -> subprocess.CompletedProcess[str]:
    args = row.args
    if row.needs_checkpoint:
        assert checkpoint is not None
        checkpoint.result()
        args = tuple(arg.format(ckpt="trained.ckpt", half="half.ckpt") for arg in args)
    return run_cli(args, folder, row.id, row.env, row.console_script)


@pytest.fixture(scope="module")
def outcomes(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Future[subprocess.CompletedProcess[str]]]]:
    """Starts the subprocesses of the selected rows of this module, a few at a time."""
    folder = tmp_path_factory.mktemp("bad_inputs")
    write_inputs(folder)
    rows = []
    for item in request.session.items:
        callspec = getattr(item, "callspec", None)
        mine = getattr(item, "module", None) is request.module
        if mine and callspec is not None and "row" in callspec.params:
            rows.append(callspec.params["row"])
    pool = ThreadPoolExecutor(max_workers=WORKERS)
    checkpoint = None
    if any(row.needs_checkpoint for row in rows):
        checkpoint = pool.submit(train_checkpoint, folder)
    ordered = sorted(rows, key=lambda row: row.needs_checkpoint)  # the checkpoint's rows last
    futures = {row.id: pool.submit(run_row, row, folder, checkpoint) for row in ordered}
    yield futures
    pool.shutdown(wait=True, cancel_futures=True)


def outcome(
    outcomes: dict[str, Future[subprocess.CompletedProcess[str]]], row: Row
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    result = outcomes[row.id].result()
    return result, result.stderr.strip().splitlines() or [""]


def shown(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}; stderr ends:\n{result.stderr[-3000:]}"


# ---------------------------------------------------------------------- the tests
@pytest.mark.parametrize("row", ROWS, ids=str)
def test_bad_input_is_one_clear_line(
    row: Row, outcomes: dict[str, Future[subprocess.CompletedProcess[str]]]
) -> None:
    result, lines = outcome(outcomes, row)
    assert result.returncode == row.code, shown(result)
    assert lines[-1].startswith(PREFIX), shown(result)
    assert row.expect in lines[-1], shown(result)
    assert not any(noise in lines[-1] for noise in NOISE), shown(result)
    assert "Traceback" not in result.stderr, shown(result)
    # A run-time error says how to see the traceback; a config error does not need it.
    assert (lines[-2:-1] == [DEBUG_HINT]) == (row.code == EXIT_RUN), shown(result)


@pytest.mark.parametrize("row", [DEBUG_ROW], ids=str)
def test_debug_switch_shows_the_traceback_above_the_same_line(
    row: Row, outcomes: dict[str, Future[subprocess.CompletedProcess[str]]]
) -> None:
    result, lines = outcome(outcomes, row)
    assert result.returncode == row.code, shown(result)
    assert "Traceback (most recent call last)" in result.stderr, shown(result)
    assert lines[-1].startswith(PREFIX) and row.expect in lines[-1], shown(result)
    assert not any(noise in lines[-1] for noise in NOISE), shown(result)


@pytest.mark.parametrize("row", [CONSOLE_ROW], ids=str)
def test_console_script_reports_like_python_dash_m(
    row: Row, outcomes: dict[str, Future[subprocess.CompletedProcess[str]]]
) -> None:
    result, lines = outcome(outcomes, row)
    assert result.returncode == row.code, shown(result)
    assert lines[-1].startswith(PREFIX) and row.expect in lines[-1], shown(result)
    assert "Traceback" not in result.stderr, shown(result)


@pytest.mark.parametrize("row", HELP_ROWS, ids=str)
def test_help_shows_how_to_see_the_task_and_datamodule_options(
    row: Row, outcomes: dict[str, Future[subprocess.CompletedProcess[str]]]
) -> None:
    result = outcomes[row.id].result()
    assert result.returncode == 0, shown(result)
    assert row.expect in result.stdout
    if row.id == "fit-help":
        tail = result.stdout.strip().splitlines()[-7:]
        assert any("nslightning fit --model.help SkipGramTask" in line for line in tail)
        assert any("nslightning fit --data.help SkipGramDataModule" in line for line in tail)


# ---------------------------------------------------------------------- in process
# More parse errors, quicker: the same report, from the exception that the command line's
# parser raises in this process.
SK = ["fit", "-c", SKIPGRAM]


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        ([*SK, "--model.dim", "many"],
         "invalid value for --model.dim: expected int. Got value: many"),
        ([*SK, "--modle.dim", "3"], "unknown option --modle.dim; did you mean --model.dim?"),
        ([*SK, "--trainer.max_epochz", "3"], "did you mean --trainer.max_epochs?"),
        ([*SK, "--model.sampler.zzz", "3"],
         "UnigramSampler has no parameter 'zzz'; its options are power, seed, never_drawn"),
        ([*SK, "--model", "NoSuchTask"], "unknown class 'NoSuchTask' for --model; known classes: "),
        ([*SK, "-c", "no_such.yaml"], "invalid value for --config: File does not exist"),
        ([*SK, "--model.sampler", "samplers/no_such.yaml"],
         "samplers/no_such.yaml for --model.sampler is neither a readable config file nor a "
         "class name"),
        (["fit", "--model.dim", "8"],
         "--model.dim comes before a class for --model: choose it first (-c CONFIG.yaml or "
         "--model SkipGramTask)"),
        (["fit", "--data.help", "PairDataModul"],
         "unknown class 'PairDataModul' for --data; did you mean PairDataModule?"),
        ([], 'expected "subcommand" to be one of {fit,validate,test,predict}'),
    ],
    ids=["wrong-type", "misspelled-group", "misspelled-trainer-option", "no-close-option",
         "no-close-class", "missing-config", "missing-sampler-config", "option-before-class",
         "help-of-misspelled-class", "no-subcommand"],
)
def test_parse_errors_in_process(
    args: list[str], expect: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["nslightning"])  # pytest's own are no CLI arguments
    with pytest.raises(argparse.ArgumentError) as caught:
        build_cli(args, parser_kwargs=parser_kwargs())
    report = describe(caught.value)
    assert report.exit_code == EXIT_CONFIG and not report.internal
    assert expect in report.line
    assert not any(noise in report.line for noise in NOISE)


def test_a_misspelled_trainer_key_in_yaml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "argv", ["nslightning"])
    config = tmp_path / "typo.yaml"
    config.write_text("trainer:\n  max_epoch: 1\n", encoding="utf-8")
    with pytest.raises(argparse.ArgumentError) as caught:
        build_cli(["fit", "-c", SKIPGRAM, "-c", str(config)], parser_kwargs=parser_kwargs())
    assert describe(caught.value).line == (
        "nslightning: error: unknown option --trainer.max_epoch; did you mean "
        "--trainer.max_epochs?"
    )


def test_from_python_errors_still_raise(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["nslightning"])
    with pytest.raises(ValueError, match="dim must be >= 1"):
        main(["fit", "-c", SKIPGRAM, *QUICK, "--data.corpus", str(write_corpus(tmp_path)),
              "--data.min_count", "1", "--model.dim", "-5"])


def write_corpus(folder: Path) -> Path:
    path = folder / "corpus.txt"
    path.write_text("\n".join(" ".join(s) for s in make_topic_corpus(50)) + "\n",
                    encoding="utf-8")
    return path


def test_an_unexpected_exception_is_reported_as_a_bug_with_its_traceback() -> None:
    try:
        raise AttributeError("'NoneType' object has no attribute 'shape'")
    except AttributeError as error:
        report = describe(error)
    assert report.internal and report.exit_code == EXIT_RUN
    assert "internal error, AttributeError" in report.line


def test_binary_corpus_files_are_refused_and_text_ones_pass(tmp_path: Path) -> None:
    import gzip

    from nslightning.data.skipgram_store import refuse_binary_files

    text = tmp_path / "text.txt"
    text.write_text("naïve café\n", encoding="utf-8")
    packed = tmp_path / "text.txt.gz"
    packed.write_bytes(gzip.compress(b"some words\n"))
    refuse_binary_files([text, packed])  # UTF-8 text, plain or compressed
    utf16 = tmp_path / "utf16.txt"
    utf16.write_text("some words\n", encoding="utf-16")
    with pytest.raises(ValueError, match=r"utf16\.txt is not text: .* give UTF-8 text"):
        refuse_binary_files([text, utf16])
