"""The worker pool of the token store's passes: order, context, failures."""

from __future__ import annotations

import os
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest

from nslightning.data import skipgram_store
from nslightning.data.block_workers import context, map_blocks
from nslightning.data.token_store import TokenStoreWriter


def scaled(item: int) -> tuple[int, int]:
    return os.getpid(), item * context()["factor"]


def die(item: int) -> int:
    if item == 3:
        os._exit(1)  # killed, as by the kernel's out-of-memory killer
    return item


@pytest.mark.parametrize("workers", [1, 2])
def test_results_come_back_in_order_with_the_context(workers: int) -> None:
    with map_blocks(scaled, range(50), workers, factor=3) as results:
        pairs = list(results)
    assert [value for _, value in pairs] == [3 * i for i in range(50)]
    assert len({pid for pid, _ in pairs} - {os.getpid()}) == (workers if workers > 1 else 0)
    assert context() == {}  # restored when the block ends


def test_a_worker_that_dies_is_an_error_not_a_hang() -> None:
    with pytest.raises(BrokenProcessPool), map_blocks(die, range(20), 2) as results:
        list(results)


def test_a_corpus_changed_during_the_build_is_refused(
    topic_corpus_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NSLIGHTNING_CACHE", str(tmp_path / "cache"))
    append = TokenStoreWriter.append
    grown = []

    def append_while_the_corpus_grows(self: TokenStoreWriter, ids, section: int = 0) -> None:
        if not grown:  # another program adds to the file once, during pass 2
            grown.append(True)
            with open(topic_corpus_file, "a", encoding="utf-8") as handle:
                handle.write("more words\n")
        append(self, ids, section)

    monkeypatch.setattr(TokenStoreWriter, "append", append_while_the_corpus_grows)
    with pytest.raises(ValueError, match="changed while its token store was being built"):
        skipgram_store(topic_corpus_file, min_count=1)
    assert list((tmp_path / "cache" / "token-stores").glob("*.tokens")) == []
