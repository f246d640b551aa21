"""Corpus scale: memory, start-up time and encoding speed of ``nslightning fit`` on big corpora.

Builds synthetic corpora by repeating the packaged text (the Wikipedia sample and gensim's Lee
background corpus, one document per line), each repetition in a new seeded line order, up to
each size in tokens, then runs ``nslightning fit -c configs/<task>.yaml --trainer.max_steps 20``
on each, twice: with an empty token-store cache (cold) and again with the cache the first run
filled (warm). Every run is a child process in its own folder (the configs write ``outputs/``
there) with ``NSLIGHTNING_CACHE=<work-dir>/cache-<size>-<task>``:

    python benchmarks/corpus_scale.py --sizes 50M,200M --tasks skipgram,lm \\
        --out outputs/corpus_scale.jsonl
    python benchmarks/corpus_scale.py --sizes 1M --tasks skipgram      # a quick try

Prints JSON lines: first the machine (CPUs, platform, torch, and ``import_baseline_s``, the wall
time of ``python -c "import nslightning.cli"``), then the corpus of each size (tokens, lines,
seconds to generate it), then one line per (size, task, cache) run:

- ``peak_rss_mb``: the child's peak RSS in MiB (``os.wait4``), ``wall_s``: from just before the
  process starts to its exit;
- ``first_step_from_start_s``: from the process's start to the first training step;
  ``imports_s``: from the start to the import of the timing callback's module, which the CLI
  does while parsing, once Python, torch, Lightning and nslightning are imported;
  ``first_step_after_imports_s``: the rest, from there to the first step; ``instantiate_s``: of
  which building the DataModule (opening, or with a cold cache building, the token store) and
  the model, up to the callback's construction; ``first_step_after_init_s``: from that
  construction (trainer set-up, ``setup``, the first batch) to the first step; ``steps_s``: the
  first step's start to the last step's end; ``after_last_step_s``: the last step's end to the
  exit (the configs' end-of-training callbacks: evaluation, export); ``global_step``;
- cold runs: ``stores``, each token store the run wrote in its cache: ``tokens_read`` and
  ``pass_seconds`` of its build passes (skip-gram: ``count``, ``encode``; language model:
  ``lines``, ``count``, ``encode``), ``pass_tokens_per_s`` and ``all_passes_tokens_per_s``;
  warm runs: ``stores_reused`` (the cold run's files, not rebuilt).

A last line, ``summary``, checks the issue's targets: peak RSS <= 1.2 GB (1.2e9 bytes) at the
largest size, RSS(largest) <= 1.1 x RSS(smallest), encoding (the ``encode`` pass, else all
passes) >= 2M tokens/s cold at every size, time to the first step with a warm cache <= 3 s at
the largest size (both from the start and after the imports); ``pass`` is ``null`` where a run
failed or reported nothing to check. It is a benchmark, not a test: it exits 0 when every run
exits 0, whatever the checks say.

The corpora stay in ``--work-dir`` (default ``$TMPDIR/nslightning-corpus-scale``) and are reused
by later invocations with the same size and seed (200M tokens is about 1.25 GB of text); each
cache and the runs' ``outputs/`` are deleted once the size and task are done unless ``--keep``
(the runs' ``log.txt`` stay). numba's compiled kernels are cached beside the package, not in
``NSLIGHTNING_CACHE``: only the first run after an install compiles them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

from first_step_timer import ENV_VAR as TIMER_ENV_VAR
from gensim.test.utils import datapath

from nslightning.atomic import atomic_write
from nslightning.data import read_sentences
from nslightning.data.token_store import TokenStore

REPO = Path(__file__).resolve().parent.parent
BENCHMARKS = Path(__file__).resolve().parent
SUFFIXES = {"K": 10**3, "M": 10**6, "B": 10**9}
CORPUS_FORMAT = 1  # bump when the generation changes: older corpora are then not reused
RSS_LIMIT_BYTES = 1.2e9
RSS_GROWTH_LIMIT = 1.1
ENCODE_LIMIT_TOKENS_PER_S = 2e6
WARM_FIRST_STEP_LIMIT_S = 3.0


def parse_size(text: str) -> int:
    """``"50M"`` -> 50_000_000 (suffixes K, M, B; decimals allowed: ``"1.5M"``)."""
    text = text.strip().upper()
    scale = SUFFIXES.get(text[-1:], 1)
    number = text[:-1] if text[-1:] in SUFFIXES else text
    try:
        value = round(float(number) * scale)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 50M, 200M, 1.5B)") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"a size must be at least one token, got {text!r}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="50M,200M", help="comma-separated token counts")
    parser.add_argument("--tasks", default="skipgram,lm", help="configs/<task>.yaml to run")
    parser.add_argument(
        "--work-dir", type=Path,
        default=Path(tempfile.gettempdir()) / "nslightning-corpus-scale",
        help="corpora, caches and run folders",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the corpora's line orders")
    parser.add_argument("--max-steps", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds a run may take")
    parser.add_argument("--keep", action="store_true", help="keep the caches and run outputs")
    parser.add_argument("--out", type=Path, help="also write the JSON lines to this file")
    args = parser.parse_args(argv)
    labels = [label.strip().upper() for label in args.sizes.split(",") if label.strip()]
    args.sizes = [(label, parse_size(label)) for label in labels]
    args.tasks = [task.strip() for task in args.tasks.split(",") if task.strip()]
    for task in args.tasks:
        if not (REPO / "configs" / f"{task}.yaml").is_file():
            parser.error(f"no config {REPO / 'configs' / f'{task}.yaml'}")
    return args


class Report:
    """Prints JSON lines (and writes them to ``--out``)."""

    def __init__(self, out: Path | None) -> None:
        self.file: IO[str] | None = None
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            self.file = open(out, "w", encoding="utf-8")  # noqa: SIM115 (closed by close())

    def emit(self, record: dict[str, Any]) -> None:
        line = json.dumps(record)
        print(line, flush=True)
        if self.file is not None:
            self.file.write(line + "\n")
            self.file.flush()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def progress(message: str) -> None:
    print(f"[corpus_scale] {message}", file=sys.stderr, flush=True)


def child_env(cache: Path | None = None, timer: Path | None = None) -> dict[str, str]:
    """The children's environment: this checkout's ``nslightning`` and the timer importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(BENCHMARKS), str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    if cache is not None:
        env["NSLIGHTNING_CACHE"] = str(cache)
    if timer is not None:
        env[TIMER_ENV_VAR] = str(timer)
    return env


def machine() -> dict[str, Any]:
    import pytorch_lightning as pl
    import torch

    start = time.time()
    subprocess.run([sys.executable, "-c", "import nslightning.cli"], check=True, env=child_env())
    import_seconds = time.time() - start
    return {
        "machine": {
            "cpu_count": os.cpu_count(),
            "cpus_usable": len(os.sched_getaffinity(0)),
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "pytorch_lightning": pl.__version__,
            "torch_threads": torch.get_num_threads(),
        },
        "import_baseline_s": round(import_seconds, 3),
    }


# -- the corpora -----------------------------------------------------------------------------


def base_lines() -> tuple[list[str], list[int]]:
    """The packaged documents, one line each, and their token counts."""
    lines: list[str] = []
    counts: list[int] = []
    for source in ("enwiki-sample", datapath("lee_background.cor")):
        for tokens in read_sentences(source):
            lines.append(" ".join(tokens))
            counts.append(len(tokens))
    return lines, counts


def corpus(
    work_dir: Path, tokens: int, seed: int, base: tuple[list[str], list[int]]
) -> dict[str, Any]:
    """The corpus of ``tokens`` tokens: reused when an earlier invocation made it, else written.

    Repetitions of the base lines, each in a new order drawn from ``random.Random(seed)``, the
    last one cut after the line that reaches ``tokens`` (so a few more tokens than asked, at
    most one document). The text goes to a temporary file renamed when complete, then its
    description to a ``.json`` beside it; a corpus is reused only when both agree.
    """
    lines, counts = base
    path = work_dir / f"corpus-{tokens}-seed{seed}.txt"
    meta_path = path.with_suffix(".json")
    base_key = {"format": CORPUS_FORMAT, "base_lines": len(lines), "base_tokens": sum(counts)}
    if path.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if (
            meta.get("target_tokens") == tokens and meta.get("seed") == seed
            and meta.get("bytes") == path.stat().st_size
            and all(meta.get(key) == value for key, value in base_key.items())
        ):
            return {**meta, "path": str(path), "reused": True}
    meta_path.unlink(missing_ok=True)
    progress(f"writing {path} ({tokens} tokens)")
    rng = random.Random(seed)
    order = list(range(len(lines)))
    written = written_lines = repetitions = 0
    began = time.perf_counter()
    with atomic_write(path, "w", encoding="utf-8") as handle:
        while written < tokens:
            rng.shuffle(order)
            chosen = []
            for index in order:
                if written >= tokens:
                    break
                chosen.append(lines[index])
                written += counts[index]
            handle.write("\n".join(chosen) + "\n")
            written_lines += len(chosen)
            repetitions += 1
    seconds = time.perf_counter() - began
    meta = {
        "target_tokens": tokens,
        "seed": seed,
        "tokens": written,
        "lines": written_lines,
        "repetitions": repetitions,
        "bytes": path.stat().st_size,
        "generate_s": round(seconds, 2),
        **base_key,
    }
    with atomic_write(meta_path, "w", encoding="utf-8") as handle:
        json.dump(meta, handle)
    return {**meta, "path": str(path), "reused": False}


# -- the runs --------------------------------------------------------------------------------


def wait_with_rusage(process: subprocess.Popen[bytes], timeout: float) -> tuple[int, Any, bool]:
    """Waits for ``process``; returns its exit code, its ``rusage`` and whether it was killed
    for running past ``timeout`` seconds."""
    timed_out = threading.Event()

    def kill() -> None:
        timed_out.set()
        process.kill()

    timer = threading.Timer(timeout, kill)
    timer.start()
    try:
        _, status, usage = os.wait4(process.pid, 0)
    except BaseException:
        process.kill()
        os.wait4(process.pid, 0)
        raise
    finally:
        timer.cancel()
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, usage, timed_out.is_set()


def store_files(cache: Path) -> dict[str, int]:
    """``name -> mtime_ns`` of the token stores in a cache folder."""
    folder = cache / "token-stores"
    return {path.name: path.stat().st_mtime_ns for path in sorted(folder.glob("*.tokens"))}


def store_report(path: Path) -> dict[str, Any]:
    """What a store says of its build: tokens read and seconds of each pass, as tokens/s."""
    try:
        store = TokenStore.open(path)
    except (OSError, ValueError) as error:
        return {"file": path.name, "error": f"{type(error).__name__}: {error}"}
    info = store.info
    tokens_read = info.get("tokens_read")
    passes = {name: float(seconds) for name, seconds in (info.get("pass_seconds") or {}).items()}
    total = sum(passes.values())
    record = {
        "file": path.name,
        "kind": info.get("kind"),
        "bytes": path.stat().st_size,
        "num_tokens": len(store),
        "vocab_size": len(store.vocabulary),
        "tokens_read": tokens_read,
        "workers": info.get("workers"),
        "pass_seconds": {name: round(seconds, 3) for name, seconds in passes.items()},
        "pass_tokens_per_s": None,
        "all_passes_tokens_per_s": None,
    }
    if isinstance(tokens_read, int):
        record["pass_tokens_per_s"] = {
            name: round(tokens_read / seconds) if seconds > 0 else None
            for name, seconds in passes.items()
        }
        record["all_passes_tokens_per_s"] = round(tokens_read / total) if total > 0 else None
    return record


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def fit(
    args: argparse.Namespace, task: str, corpus_path: Path, cache: Path, run_dir: Path
) -> dict[str, Any]:
    """One ``nslightning fit`` in a child process: its peak RSS, wall time and timer stamps."""
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    timer_path = run_dir / "first_step.json"
    command = [
        sys.executable, "-m", "nslightning", "fit",
        "-c", str(REPO / "configs" / f"{task}.yaml"),
        "--data.corpus", str(corpus_path),
        "--trainer.max_steps", str(args.max_steps),
        "--trainer.callbacks+=first_step_timer.FirstStepTimer",
    ]
    env = child_env(cache, timer_path)
    with open(run_dir / "log.txt", "wb") as log:
        start = time.time()
        process = subprocess.Popen(
            command, cwd=run_dir, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        returncode, usage, timed_out = wait_with_rusage(process, args.timeout)
        wall = time.time() - start
    record: dict[str, Any] = {
        "returncode": returncode,
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # KiB on Linux
        "wall_s": round(wall, 3),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
    }
    if timed_out:
        record["error"] = f"killed after {args.timeout} s"
    elif returncode != 0:
        record["error"] = f"exit code {returncode}"
    if not timer_path.is_file():
        record.setdefault("error", "the timer wrote nothing (training did not end)")
        record["log_tail"] = log_tail(run_dir / "log.txt")
        return record
    if "error" in record:
        record["log_tail"] = log_tail(run_dir / "log.txt")
    stamps = json.loads(timer_path.read_text(encoding="utf-8"))

    def seconds(end: str, begin: float | None) -> float | None:
        if stamps.get(end) is None or begin is None:
            return None
        return round(stamps[end] - begin, 3)

    record.update(
        first_step_from_start_s=seconds("first_batch_start", start),
        first_step_after_imports_s=seconds("first_batch_start", stamps["imported_time"]),
        first_step_after_init_s=seconds("first_batch_start", stamps["init_time"]),
        imports_s=seconds("imported_time", start),
        instantiate_s=seconds("init_time", stamps["imported_time"]),
        first_step_s=seconds("first_batch_end", stamps.get("first_batch_start")),
        steps_s=seconds("last_batch_end", stamps.get("first_batch_start")),
        after_last_step_s=(
            round(start + wall - stamps["last_batch_end"], 3)
            if stamps.get("last_batch_end") is not None else None
        ),
        global_step=stamps.get("global_step"),
        peak_rss_mb_at_train_end=round(stamps["peak_rss_mb_at_train_end"], 1),
    )
    return record


def cache_megabytes(cache: Path) -> float:
    files = (path for path in cache.rglob("*") if path.is_file())
    return round(sum(path.stat().st_size for path in files) / 2**20, 1)


def run_pair(
    args: argparse.Namespace, label: str, corpus_meta: dict[str, Any], task: str,
    report: Report,
) -> list[dict[str, Any]]:
    """The cold run and the warm run of one size and task."""
    cache = args.work_dir / f"cache-{label}-{task}"
    shutil.rmtree(cache, ignore_errors=True)
    records = []
    cold_stores: dict[str, int] = {}
    for state in ("cold", "warm"):
        progress(f"{label} {task} {state}")
        run_dir = args.work_dir / "runs" / f"{label}-{task}-{state}"
        record: dict[str, Any] = {
            "size": label, "corpus_tokens": corpus_meta["tokens"], "task": task, "cache": state,
            "max_steps": args.max_steps,
        }
        record.update(fit(args, task, Path(corpus_meta["path"]), cache, run_dir))
        stores = store_files(cache)
        record["cache_mb"] = cache_megabytes(cache) if cache.exists() else 0.0
        if state == "cold":
            cold_stores = stores
            record["stores"] = [store_report(cache / "token-stores" / name) for name in stores]
            if not stores and record["returncode"] == 0:
                record["note"] = "no token store in the cache: the DataModule did not write one"
        else:
            record["stores_reused"] = bool(stores) and stores == cold_stores
        report.emit(record)
        records.append(record)
        if not args.keep:
            shutil.rmtree(run_dir / "outputs", ignore_errors=True)
    if not args.keep:
        shutil.rmtree(cache, ignore_errors=True)
    return records


# -- the targets -----------------------------------------------------------------------------


def encode_speed(record: dict[str, Any]) -> tuple[float | None, str | None]:
    """The encoding tokens/s of a cold run: its stores' ``encode`` pass (the slowest store),
    else all their passes together."""
    speeds = []
    basis = None
    for store in record.get("stores") or []:
        per_pass = store.get("pass_tokens_per_s") or {}
        if per_pass.get("encode"):
            speeds.append(per_pass["encode"])
            basis = basis or "encode pass"
        elif store.get("all_passes_tokens_per_s"):
            speeds.append(store["all_passes_tokens_per_s"])
            basis = "all passes"
    return (min(speeds), basis) if speeds else (None, None)


def check(
    name: str, task: str, value: float | None, limit: float, at_least: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    """A target: ``value <= limit`` (``>=`` with ``at_least``); ``pass`` is ``None`` without a
    value."""
    verdict = None if value is None else bool(value >= limit if at_least else value <= limit)
    return {"check": name, "task": task, "value": value, "limit": limit, "pass": verdict, **extra}


def summary(args: argparse.Namespace, records: list[dict[str, Any]]) -> dict[str, Any]:
    def find(label: str, task: str, state: str) -> dict[str, Any]:
        for record in records:
            if (record["size"], record["task"], record["cache"]) == (label, task, state):
                return record
        return {}

    def ok(record: dict[str, Any], key: str) -> Any:
        return record.get(key) if record and record.get("returncode") == 0 else None

    ordered = sorted(args.sizes, key=lambda size: size[1])
    smallest, largest = ordered[0][0], ordered[-1][0]
    checks = []
    for task in args.tasks:
        for state in ("cold", "warm"):
            rss = ok(find(largest, task, state), "peak_rss_mb")
            checks.append(check(
                f"peak_rss_mb_{largest}", task,
                rss, round(RSS_LIMIT_BYTES / 2**20, 1), cache=state,
            ))
            if len(ordered) > 1:
                small = ok(find(smallest, task, state), "peak_rss_mb")
                ratio = round(rss / small, 3) if rss and small else None
                checks.append(check(
                    f"rss_ratio_{largest}_over_{smallest}", task, ratio, RSS_GROWTH_LIMIT,
                    cache=state,
                ))
        for label, _ in ordered:
            speed, basis = encode_speed(find(label, task, "cold"))
            checks.append(check(f"encode_tokens_per_s_cold_{label}", task, speed,
                                ENCODE_LIMIT_TOKENS_PER_S, at_least=True, basis=basis))
        warm = find(largest, task, "warm")
        for key in ("first_step_from_start_s", "first_step_after_imports_s"):
            checks.append(check(f"warm_{key}_{largest}", task, ok(warm, key),
                                WARM_FIRST_STEP_LIMIT_S))
    verdicts = [entry["pass"] for entry in checks]
    return {
        "summary": {
            "sizes": [label for label, _ in ordered],
            "tasks": args.tasks,
            "runs_failed": sum(1 for record in records if record.get("returncode") != 0),
            "all_pass": all(verdict is True for verdict in verdicts),
            "unchecked": sum(1 for verdict in verdicts if verdict is None),
            "checks": checks,
        }
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    report = Report(args.out)
    records: list[dict[str, Any]] = []
    try:
        report.emit(machine())
        base = base_lines()
        for label, tokens in args.sizes:
            corpus_meta = corpus(args.work_dir, tokens, args.seed, base)
            report.emit({"corpus": label, **corpus_meta})
            for task in args.tasks:
                records += run_pair(args, label, corpus_meta, task, report)
        report.emit(summary(args, records))
    finally:
        report.close()
    progress(f"work folder: {args.work_dir}")
    if any(record.get("returncode") != 0 for record in records):
        sys.exit(1)


if __name__ == "__main__":
    main()
