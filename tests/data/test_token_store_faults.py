"""Token-store faults with real processes: killed and interrupted builds, concurrent builds, a
full disk."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from nslightning.data import TokenStore

WORKER = """
import logging, sys, time
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
import nslightning.data.block_workers as block_workers
import nslightning.data.corpus as corpus_files
import nslightning.data.token_store as token_store
from nslightning.data import skipgram_store

# Instrumentation, not behaviour: two worker processes whatever the size, and small blocks,
# each written slowly, so that pass 2 lasts about 2 s and a signal or a second process
# reliably meets it half-way.
block_workers.PARALLEL_BYTES = 0
corpus_files.BLOCK_BYTES = 1 << 20
append = token_store.TokenStoreWriter.append
def slow_append(self, ids, section=0):
    append(self, ids, section)
    time.sleep(0.1)
token_store.TokenStoreWriter.append = slow_append

store = skipgram_store(sys.argv[1], min_count=1, workers=2)
print(store.path, int(store.tokens.sum(dtype="int64")), len(store), flush=True)
"""


@pytest.fixture(scope="module")
def big_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 3M tokens: long enough that pass 2 takes a moment."""
    rng = np.random.default_rng(0)
    words = np.asarray([f"w{i}" for i in range(5000)])
    ids = rng.zipf(1.2, size=3_000_000) % 5000
    path = tmp_path_factory.mktemp("big") / "big.txt"
    lines = words[ids].reshape(-1, 20)
    path.write_text("\n".join(" ".join(line) for line in lines) + "\n", encoding="utf-8")
    return path


def start(corpus: Path, cache: Path, **kwargs: object) -> subprocess.Popen[str]:
    env = {**os.environ, "NSLIGHTNING_CACHE": str(cache)}
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, str(corpus)], env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs,  # type: ignore[call-overload]
    )


def wait_for(process: subprocess.Popen[str], text: str) -> None:
    assert process.stderr is not None
    for line in process.stderr:
        if text in line:
            return
    raise AssertionError(f"the worker ended before {text!r}")


def leftover_workers(timeout: float = 10.0) -> list[int]:
    """Processes still running the worker script (its pool's children included)."""
    deadline = time.monotonic() + timeout
    while True:
        found = []
        for entry in Path("/proc").iterdir():
            try:
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"slow_append" in command and entry.name.isdigit():
                found.append(int(entry.name))
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def stores(cache: Path) -> tuple[list[Path], list[Path]]:
    folder = cache / "token-stores"
    return sorted(folder.glob("*.tokens")), sorted(folder.glob(".*.tmp"))


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM])
def test_a_build_stopped_during_pass_2_leaves_no_store_a_later_run_trusts(
    big_corpus: Path, tmp_path: Path, signum: int
) -> None:
    cache = tmp_path / "cache"
    worker = start(big_corpus, cache)
    wait_for(worker, "pass 2/2 (encode): writing")
    assert worker.poll() is None
    worker.send_signal(signum)
    assert worker.wait(timeout=60) != 0
    assert worker.stderr is not None
    said = worker.stderr.read()  # for the messages below
    assert leftover_workers() == [], said  # the pool's processes end with it
    built, temporary = stores(cache)
    assert built == [], said
    if signum == signal.SIGINT:
        assert temporary == [], said  # KeyboardInterrupt cleans up
    else:
        assert temporary, said  # the half-written file stays, under a temporary name
    rerun = start(big_corpus, cache)
    out, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err
    assert "building the token store" in err
    built, temporary = stores(cache)
    assert len(built) == 1 and temporary == []
    path, total, length = out.split()
    assert Path(path) == built[0] and int(length) == 3_000_000
    assert int(TokenStore.open(path).tokens.sum(dtype=np.int64)) == int(total)


def test_runs_started_together_build_the_store_once(big_corpus: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    workers = [start(big_corpus, cache) for _ in range(2)]
    results = [worker.communicate(timeout=180) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], results
    assert sum("building the token store" in err for _, err in results) == 1
    assert sum("waiting for the lock" in err for _, err in results) == 1
    assert results[0][0] == results[1][0]  # same store, same ids
    built, temporary = stores(cache)
    assert len(built) == 1 and temporary == []


def _small_file_limit() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))


def test_a_full_disk_names_the_cache_folder_and_the_variable(
    big_corpus: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    worker = start(big_corpus, cache, preexec_fn=_small_file_limit)
    _, err = worker.communicate(timeout=120)
    assert worker.returncode != 0
    last = err.strip().splitlines()[-1]
    assert f"no space left to write the token store in {cache / 'token-stores'}" in last
    assert "NSLIGHTNING_CACHE" in last
    assert stores(cache) == ([], [])
