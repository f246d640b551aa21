"""The built-in ``enwiki-sample`` cache under interrupts, with real processes and signals.

gensim's ``WikiCorpus.get_texts`` catches ``KeyboardInterrupt`` and ends as if the corpus were
complete, and runs a worker pool that outlives a killed parent: a Ctrl-C during the first build
used to commit a truncated corpus that every later run trained on.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nslightning.data.corpus import enwiki_sample_path

BUILD = """
import sys
from nslightning.data.corpus import enwiki_sample_path
print("building", flush=True)
print(enwiki_sample_path(), flush=True)
"""
ARTICLES = 106


def start_build(cache: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "NSLIGHTNING_CACHE": str(cache)}
    return subprocess.Popen(
        [sys.executable, "-c", BUILD], env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


def wait_for_temporary(cache: Path, process: subprocess.Popen[str]) -> None:
    """Waits until the build has opened its temporary file (the build is under way)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if cache.exists() and any(cache.glob(".enwiki-sample-*.tmp")):
            return
        if process.poll() is not None:
            raise AssertionError(f"the build ended before its temporary file: {process.stderr}")
        time.sleep(0.005)
    raise AssertionError("no temporary file after 60 s")


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


@pytest.mark.parametrize("delay", [0.0, 0.3, 0.9])
def test_ctrl_c_during_the_build_commits_nothing(tmp_path: Path, delay: float) -> None:
    cache = tmp_path / "cache"
    process = start_build(cache)
    wait_for_temporary(cache, process)
    time.sleep(delay)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    committed = cache / "enwiki-sample-v2.txt"
    if process.returncode == 0:  # the build won the race: then the file must be whole
        assert len(committed.read_text(encoding="utf-8").splitlines()) == ARTICLES
        pytest.skip("the build finished before the signal arrived")
    assert "KeyboardInterrupt" in stderr, stderr
    assert not committed.exists(), "an interrupted build committed a partial corpus"
    assert not list(cache.glob(".enwiki-sample-*")), "the interrupted build left its temporary"


def test_sigkill_leaves_no_process_and_the_next_build_is_whole(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    process = start_build(cache)
    wait_for_temporary(cache, process)
    time.sleep(0.3)
    assert children_of(process.pid) == [], "the build runs helper processes that can be orphaned"
    process.kill()
    process.wait(timeout=30)
    assert not (cache / "enwiki-sample-v2.txt").exists()

    again = start_build(cache)
    stdout, stderr = again.communicate(timeout=120)
    assert again.returncode == 0, stderr
    committed = Path(stdout.splitlines()[-1])
    lines = committed.read_text(encoding="utf-8").splitlines()
    assert len(lines) == ARTICLES
    assert lines[0].split()[:3] == ["anarchism", "is", "political"]
    assert not list(cache.glob(".enwiki-sample-*.tmp")), "the killed build's temporary was kept"


def test_the_cache_holds_what_gensims_wikicorpus_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gensim.corpora import WikiCorpus
    from gensim.test.utils import datapath

    monkeypatch.setenv("NSLIGHTNING_CACHE", str(tmp_path))
    ours = enwiki_sample_path().read_text(encoding="utf-8").splitlines()
    wiki = WikiCorpus(
        datapath("enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"),
        dictionary={}, processes=1,
    )
    assert ours == [" ".join(tokens) for tokens in wiki.get_texts()]
