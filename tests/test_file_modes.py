"""Files written under a temporary name and renamed (exports, vocabularies, token stores) get
the mode an ordinary ``open()`` gives, ``0o666`` less the umask, not ``mkstemp``'s ``0o600``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Runs in a fresh process whose umask is set before nslightning reads it (it reads it once).
CHILD = r"""
import json, os, stat, sys
from pathlib import Path

os.umask(int(sys.argv[2], 8))
import numpy as np
import torch

from nslightning import atomic
from nslightning.atomic import atomic_write
from nslightning.callbacks import save_word2vec_format
from nslightning.data.token_store import TokenStore, TokenStoreWriter
from nslightning.data.vocabulary import Vocabulary

out = Path(sys.argv[1])
vocabulary = Vocabulary.from_text("the\t3\ncat\t2\nsat\t1\n")
with atomic_write(out / "plain.txt") as handle:
    handle.write("text")
with TokenStoreWriter(out / "store.bin") as writer:
    writer.append(np.array([0, 1, 2, 0], dtype=np.int32))
    writer.commit(vocabulary, {})
TokenStore.open(out / "store.bin")
# what Word2VecExport writes: the vectors and their vocabulary
save_word2vec_format(out / "vectors.txt", vocabulary.tokens, torch.ones(3, 2))
vocabulary.save(out / "vectors.txt.vocab.tsv")
with open(out / "reference.txt", "w") as handle:  # what open() gives
    handle.write("text")
modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()}
print(json.dumps({
    "modes": modes,
    "proc": atomic._umask_from_proc(),
    "by_setting": atomic._umask_by_setting(),
    "umask_after": os.umask(0),
}))
"""


def modes_under(umask: int, folder: Path) -> dict:
    folder.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(folder), f"{umask:o}"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
@pytest.mark.parametrize(("umask", "expected"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_committed_files_get_the_mode_open_gives(tmp_path: Path, umask: int, expected: int) -> None:
    found = modes_under(umask, tmp_path / "out")
    files = found["modes"]
    assert set(files) == {
        "plain.txt", "store.bin", "store.bin.verified", "vectors.txt", "vectors.txt.vocab.tsv",
        "reference.txt",
    }, "a temporary file was left behind"
    assert {name: oct(mode) for name, mode in files.items()} == {
        name: oct(expected) for name in files
    }
    # Both ways of reading the umask agree, and reading it leaves it as it was.
    if found["proc"] is not None:
        assert found["proc"] == umask
    assert found["by_setting"] == umask
    assert found["umask_after"] == umask


def test_new_file_mode_follows_the_umask_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from nslightning import atomic

    atomic.current_umask.cache_clear()
    monkeypatch.setattr(atomic, "_umask_from_proc", lambda: 0o027)
    try:
        assert atomic.new_file_mode() == 0o640
        monkeypatch.setattr(atomic, "_umask_from_proc", lambda: None)
        assert atomic.new_file_mode() == 0o640  # read once
        atomic.current_umask.cache_clear()
        assert atomic.new_file_mode() == 0o666 & ~atomic._umask_by_setting()  # the fallback
    finally:
        atomic.current_umask.cache_clear()
