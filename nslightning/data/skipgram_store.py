"""The skip-gram corpus as a token store: count (pass 1), then encode (pass 2), cached.

Pass 1 counts the tokens in bounded memory (:class:`~nslightning.data.token_counts.
TokenCounter`) and builds the vocabulary; pass 2 reads the corpus again and writes the ids of
the in-vocabulary tokens (out-of-vocabulary tokens are dropped, as word2vec does) with the start
of every non-empty line. The ids, their order and the sentence numbers are those of an
in-memory encoding of the same corpus.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from itertools import repeat
from pathlib import Path

import numpy as np

from nslightning.data.corpus import resolve_paths
from nslightning.data.store_cache import files_fingerprint, open_or_build, store_path
from nslightning.data.text_blocks import read_text_blocks, token_blocks
from nslightning.data.token_counts import DEFAULT_COUNT_LIMIT, TokenCounter
from nslightning.data.token_store import TokenStore, TokenStoreWriter
from nslightning.data.vocabulary import Vocabulary

log = logging.getLogger(__name__)


def count_vocabulary(
    paths: list[Path],
    min_count: int = 5,
    max_size: int | None = None,
    count_limit: int | None = DEFAULT_COUNT_LIMIT,
    source: str = "corpus",
    timings: dict[str, float] | None = None,
) -> Vocabulary:
    """Pass 1: streams the corpus and builds its vocabulary (:meth:`Vocabulary.from_counts`).

    ``timings["count"]`` receives the pass's seconds."""
    timings = {} if timings is None else timings
    counter = TokenCounter(count_limit)
    began = time.perf_counter()
    for path in paths:
        for text, _ in read_text_blocks(path):  # lines do not matter here
            counter.update(text.split())
    total = counter.counts.total() + counter.pruned_tokens
    log.info("pass 1/2 (count): %d tokens in %.1f s", total, time.perf_counter() - began)
    counter.warn_if_pruned(source)
    timings["count"] = time.perf_counter() - began
    return Vocabulary.from_counts(counter.counts, min_count=min_count, max_size=max_size)


def write_skipgram_store(
    path: Path, paths: list[Path], vocabulary: Vocabulary, info: dict[str, object],
    timings: dict[str, float] | None = None,
) -> None:
    """Pass 2: writes the ids of ``paths`` under ``vocabulary`` and the sentence starts.

    ``info`` is recorded in the store's header, with ``tokens_read`` and the seconds of each
    pass (``timings`` plus ``encode``)."""
    timings = {} if timings is None else timings
    index = vocabulary.index
    began = time.perf_counter()
    read = position = 0
    with TokenStoreWriter(path) as writer:
        log.info("pass 2/2 (encode): writing %s", path)
        for block in token_blocks(paths):
            ids = np.fromiter(map(index.get, block.tokens, repeat(-1)), dtype=np.int32,
                              count=len(block.tokens))
            keep = ids >= 0
            pieces = len(block.lengths)
            kept = np.bincount(np.repeat(np.arange(pieces), block.lengths)[keep],
                               minlength=pieces)
            before = position + np.cumsum(kept) - kept
            writer.start_sentences(before[block.starts])
            writer.append(ids[keep])
            read += len(block.tokens)
            position += int(kept.sum())
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
) -> TokenStore:
    """The token store of a skip-gram corpus, from the cache or built (and cached) now.

    Args:
        source: a corpus (see :func:`~nslightning.data.corpus.resolve_paths`).
        min_count: keep tokens seen at least this often (ignored with ``vocabulary``).
        max_size: keep at most this many tokens (ignored with ``vocabulary``).
        vocabulary: a vocabulary file (``Vocabulary.save``) to encode with instead.
        count_limit: most distinct tokens held while counting (see ``TokenCounter``).
    """
    paths = resolve_paths(source)
    given = Vocabulary.load(vocabulary) if vocabulary is not None else None
    if given is not None:
        settings: dict[str, object] = {
            "vocabulary_sha256": hashlib.sha256(given.to_text().encode()).hexdigest()
        }
    else:
        settings = {"min_count": min_count, "max_size": max_size, "count_limit": count_limit}
    path = store_path("skipgram", {"files": files_fingerprint(paths), **settings})
    info = {"kind": "skipgram", "corpus": os.fspath(source)[:500], "files": len(paths),
            "settings": settings}

    def build(target: Path) -> None:
        timings: dict[str, float] = {}
        vocab = given or count_vocabulary(paths, min_count, max_size, count_limit,
                                          os.fspath(source), timings)
        write_skipgram_store(target, paths, vocab, info, timings)

    return open_or_build(path, build)
