"""The skip-gram corpus as a token store: count (pass 1), then encode (pass 2), cached.

Pass 1 counts the tokens in bounded memory (:class:`~nslightning.data.token_counts.
TokenCounter`) and builds the vocabulary; pass 2 reads the corpus again and writes the ids of
the in-vocabulary tokens (out-of-vocabulary tokens are dropped, as word2vec does) with the start
of every non-empty line. The ids, their order and the sentence numbers are those of an
in-memory encoding of the same corpus.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from dataclasses import replace
from itertools import repeat
from pathlib import Path

import numpy as np

from nslightning.data.block_workers import (
    check_workers,
    context,
    map_blocks,
    worker_count,
)
from nslightning.data.corpus import open_binary, resolve_paths
from nslightning.data.store_cache import files_fingerprint, open_or_build, store_path
from nslightning.data.text_blocks import LineNumbers, RawBlock, read_blocks, split_block
from nslightning.data.token_counts import DEFAULT_COUNT_LIMIT, TokenCounter
from nslightning.data.token_store import TokenStore, TokenStoreWriter
from nslightning.data.vocabulary import Vocabulary

log = logging.getLogger(__name__)


def _count_tokens(text: str) -> Counter[str]:
    """Worker of pass 1: the counts of one block's tokens."""
    return Counter(text.split())


def _encode_block(block: RawBlock) -> tuple[RawBlock, np.ndarray, np.ndarray, np.ndarray]:
    """Worker of pass 2: one block's in-vocabulary ids (``(n,)`` int32), and the tokens
    (``(L,)`` int64) and kept ids (``(L,)`` int64) of each line piece."""
    tokens, lengths = split_block(block.text)
    index = context()["index"]
    ids = np.fromiter(map(index.get, tokens, repeat(-1)), dtype=np.int32, count=len(tokens))
    keep = ids >= 0
    pieces = len(lengths)
    kept = np.bincount(np.repeat(np.arange(pieces), lengths)[keep], minlength=pieces)
    return replace(block, text=""), ids[keep], lengths, kept


def refuse_binary_files(paths: list[Path], sniff_bytes: int = 8000) -> None:
    """Raises ``ValueError`` for a file whose first ``sniff_bytes`` (decompressed) hold a NUL
    byte, as binary files (and UTF-16 text) do and UTF-8 text does not (git's test)."""
    for path in paths:
        try:
            with open_binary(path) as handle:
                head = handle.read(sniff_bytes)
        except Exception:  # a corrupt file: the reader names the problem later
            continue
        if b"\x00" in head:
            raise ValueError(
                f"corpus file {path} is not text: its first bytes hold NUL bytes, as binary "
                "files and UTF-16 text do; give UTF-8 text (plain, .gz or .bz2)."
            )


def count_vocabulary(
    paths: list[Path],
    min_count: int = 5,
    max_size: int | None = None,
    count_limit: int | None = DEFAULT_COUNT_LIMIT,
    source: str = "corpus",
    timings: dict[str, float] | None = None,
    workers: int = 1,
) -> Vocabulary:
    """Pass 1: streams the corpus and builds its vocabulary (:meth:`Vocabulary.from_counts`).

    ``timings["count"]`` receives the pass's seconds; ``workers`` processes count the blocks."""
    timings = {} if timings is None else timings
    counter = TokenCounter(count_limit)
    began = time.perf_counter()
    texts = (block.text for block in read_blocks(paths))
    with map_blocks(_count_tokens, texts, workers) as counted:
        for counts in counted:
            counter.update(counts)
    total = counter.counts.total() + counter.pruned_tokens
    log.info("pass 1/2 (count): %d tokens in %.1f s", total, time.perf_counter() - began)
    counter.warn_if_pruned(source)
    timings["count"] = time.perf_counter() - began
    return Vocabulary.from_counts(counter.counts, min_count=min_count, max_size=max_size)


def write_skipgram_store(
    path: Path, paths: list[Path], vocabulary: Vocabulary, info: dict[str, object],
    timings: dict[str, float] | None = None, workers: int = 1,
) -> None:
    """Pass 2: writes the ids of ``paths`` under ``vocabulary`` and the sentence starts.

    ``info`` is recorded in the store's header, with ``tokens_read`` and the seconds of each
    pass (``timings`` plus ``encode``)."""
    timings = {} if timings is None else timings
    began = time.perf_counter()
    read = position = 0
    numbers = LineNumbers()
    with TokenStoreWriter(path) as writer:
        log.info("pass 2/2 (encode): writing %s", path)
        blocks = read_blocks(paths)
        with map_blocks(_encode_block, blocks, workers, index=vocabulary.index) as encoded:
            for block, ids, lengths, kept in encoded:
                _, starts, _ = numbers.number(lengths, block.continues, block.is_open)
                before = position + np.cumsum(kept) - kept
                writer.start_sentences(before[starts])
                writer.append(ids)
                read += int(lengths.sum())
                position += len(ids)
        if read == 0:
            raise ValueError("the corpus is empty: no tokens were read; check the path.")
        if position == 0:
            raise ValueError(
                "no corpus token is in the vocabulary; the vocabulary was built from another "
                "corpus."
            )
        timings["encode"] = time.perf_counter() - began
        writer.commit(vocabulary, {**info, "tokens_read": read, "pass_seconds": timings})
    log.info("pass 2/2 (encode): %d tokens in %.1f s", read, timings["encode"])


def skipgram_store(
    source: str | os.PathLike[str],
    min_count: int = 5,
    max_size: int | None = None,
    vocabulary: str | os.PathLike[str] | None = None,
    count_limit: int | None = DEFAULT_COUNT_LIMIT,
    workers: int | None = None,
) -> TokenStore:
    """The token store of a skip-gram corpus, from the cache or built (and cached) now.

    Args:
        source: a corpus (see :func:`~nslightning.data.corpus.resolve_paths`).
        min_count: keep tokens seen at least this often (ignored with ``vocabulary``).
        max_size: keep at most this many tokens (ignored with ``vocabulary``).
        vocabulary: a vocabulary file (``Vocabulary.save``) to encode with instead.
        count_limit: most distinct tokens held while counting (see ``TokenCounter``).
        workers: processes that read the corpus (see
            :func:`~nslightning.data.block_workers.worker_count`); the store is the same.
    """
    paths = resolve_paths(source)
    check_workers(workers)
    given = Vocabulary.load(vocabulary) if vocabulary is not None else None
    if given is not None:
        settings: dict[str, object] = {
            "vocabulary_sha256": given.checksum()
        }
    else:
        settings = {"min_count": min_count, "max_size": max_size, "count_limit": count_limit}
    path = store_path("skipgram", {"files": files_fingerprint(paths), **settings})
    info = {"kind": "skipgram", "corpus": os.fspath(source)[:500], "files": len(paths),
            "settings": settings}

    def build(target: Path) -> None:
        refuse_binary_files(paths)
        timings: dict[str, float] = {}
        processes = worker_count(workers, paths)
        vocab = given or count_vocabulary(paths, min_count, max_size, count_limit,
                                          os.fspath(source), timings, processes)
        write_skipgram_store(target, paths, vocab, {**info, "workers": processes}, timings,
                             processes)

    return open_or_build(path, build, paths)
