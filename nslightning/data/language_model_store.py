"""The language model's text as a token store with train, val and test sections, cached.

One corpus is split by document (line): pass 1 measures the lines, the split is drawn from
their lengths (:func:`~nslightning.data.language_model_text.split_assignment`), pass 2 counts
the training lines' tokens and pass 3 writes the ids, ``<eos>`` after each line and ``<unk>``
for unknown tokens, into the section of its line. With three corpora, pass 1 counts the
training corpus and pass 2 writes each corpus into its section. Each section keeps the corpus
order of its lines, so a split is one slice of the store.
"""

from __future__ import annotations

import hashlib
import os
import time
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import compress, repeat
from pathlib import Path

import numpy as np

from nslightning.data.corpus import resolve_paths
from nslightning.data.language_model_text import (
    EOS,
    UNK,
    check_specials,
    check_vocabulary_size,
    split_assignment,
    vocabulary_from_counts,
)
from nslightning.data.store_cache import files_fingerprint, open_or_build, store_path
from nslightning.data.text_blocks import TokenBlock, token_blocks
from nslightning.data.token_counts import DEFAULT_COUNT_LIMIT, TokenCounter
from nslightning.data.token_store import TokenStore, TokenStoreWriter
from nslightning.data.vocabulary import Vocabulary

SECTIONS = ("train", "val", "test")
_ROLES = ("training", "validation", "test")


@dataclass(frozen=True)
class LanguageModelText:
    """Where the text comes from and how it is split and counted.

    ``val_corpus`` and ``test_corpus`` both given: three corpora; both ``None``: ``corpus`` is
    split by document with ``val_fraction``, ``test_fraction`` and ``split_seed``.
    """

    corpus: str
    val_corpus: str | None = None
    test_corpus: str | None = None
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    split_seed: int = 0
    min_count: int = 3
    max_size: int | None = None
    count_limit: int | None = DEFAULT_COUNT_LIMIT

    @property
    def is_split(self) -> bool:
        return self.val_corpus is None


def _line_lengths(blocks: Iterator[TokenBlock]) -> np.ndarray:
    """``(S,)`` int64 tokens per non-empty line (pieces of one line added up)."""
    lengths = array("q")  # 8 bytes per line: 320 MB for a corpus of 40M lines
    for block in blocks:
        real = block.lines >= 0
        numbers, sizes = block.lines[real], block.lengths[real]
        if numbers.size and numbers[0] < len(lengths):  # the rest of a line begun before
            lengths[int(numbers[0])] += int(sizes[0])
            sizes = sizes[1:]
        lengths.extend(sizes.tolist())
    return np.frombuffer(lengths, dtype=np.int64) if lengths else np.zeros(0, np.int64)


def _count(blocks: Iterator[TokenBlock], keep: np.ndarray | None, limit: int | None,
           source: str) -> tuple[TokenCounter, int]:
    """Counts the tokens of the lines where ``keep`` (``(S,)`` bool; ``None``: all lines);
    returns the counter and the number of counted lines."""
    counter = TokenCounter(limit)
    lines = 0
    for block in blocks:
        if keep is None:
            counter.update(block.tokens)
        else:
            counter.update(compress(block.tokens, keep[block.token_lines()].tolist()))
        lines = max(lines, int(block.lines.max(initial=-1)) + 1)
    counter.warn_if_pruned(source)
    return counter, lines if keep is None else int(keep.sum())


def _encode(blocks: Iterator[TokenBlock], vocabulary: Vocabulary, writer: TokenStoreWriter,
            assignment: np.ndarray | None, section: int) -> int:
    """Writes ids with ``<eos>`` after each line into the section of its line (``assignment``,
    ``(S,)`` int8) or into ``section``; returns the number of tokens read."""
    index, unk, eos = vocabulary.index, vocabulary[UNK], vocabulary[EOS]
    read = 0
    for block in blocks:
        ids = np.fromiter(map(index.get, block.tokens, repeat(unk)), dtype=np.int32,
                          count=len(block.tokens))
        closing = np.cumsum(block.lengths)[block.ends]
        ids = np.insert(ids, closing, eos)
        read += len(block.tokens)
        if assignment is None:
            writer.append(ids, section)
            continue
        parts = np.insert(assignment[block.token_lines()], closing,
                          assignment[block.lines[block.ends]])
        for part in range(len(SECTIONS)):
            writer.append(ids[parts == part], part)
    return read


def language_model_store(
    text: LanguageModelText, vocabulary: str | os.PathLike[str] | None = None
) -> TokenStore:
    """The token store of a language model's text, from the cache or built now.

    Args:
        text: the corpora, split and vocabulary settings.
        vocabulary: a vocabulary file (``Vocabulary.save``, with ``<unk>`` and ``<eos>``) to
            encode with instead of building one from the training text.

    Raises:
        ValueError: an empty corpus, bad split fractions, too few lines to split, or a
            vocabulary without ``<unk>`` and ``<eos>``.
    """
    check_vocabulary_size(text.min_count, text.max_size)
    sources = [text.corpus] if text.is_split else [text.corpus, text.val_corpus, text.test_corpus]
    paths = [resolve_paths(source) for source in sources if source is not None]
    given = Vocabulary.load(vocabulary) if vocabulary is not None else None
    settings: dict[str, object] = {"split": None}
    if text.is_split:  # the files' fingerprints say which corpus
        settings["split"] = [text.val_fraction, text.test_fraction, text.split_seed]
    if given is not None:
        check_specials(given)
        settings["vocabulary_sha256"] = hashlib.sha256(given.to_text().encode()).hexdigest()
    else:
        settings["vocabulary"] = [text.min_count, text.max_size, text.count_limit]
    path = store_path("lm", {"files": [files_fingerprint(p) for p in paths], **settings})

    def build(target: Path) -> None:
        timings: dict[str, float] = {}
        began = time.perf_counter()
        assignment = None
        if text.is_split:
            lengths = _line_lengths(token_blocks(paths[0]))
            _check_read(int(lengths.sum()), 0, text)
            assignment = split_assignment(lengths, text.val_fraction, text.test_fraction,
                                          text.split_seed)
            del lengths  # only the assignment, 1 byte per line, is kept
            timings["lines"] = time.perf_counter() - began
        vocab = given
        if vocab is None:
            began = time.perf_counter()
            keep = None if assignment is None else assignment == 0
            counter, lines = _count(token_blocks(paths[0]), keep, text.count_limit, text.corpus)
            _check_read(counter.counts.total() + counter.pruned_tokens, 0, text)
            vocab = vocabulary_from_counts(counter.counts, lines, text.min_count, text.max_size,
                                           pruned=counter.pruned_tokens)
            timings["count"] = time.perf_counter() - began
        began = time.perf_counter()
        read = 0
        with TokenStoreWriter(target, SECTIONS) as writer:
            if assignment is not None:
                read = _encode(token_blocks(paths[0]), vocab, writer, assignment, 0)
            else:
                for part, files in enumerate(paths):
                    tokens = _encode(token_blocks(files), vocab, writer, None, part)
                    _check_read(tokens, part, text)
                    read += tokens
            timings["encode"] = time.perf_counter() - began
            writer.commit(vocab, {"kind": "lm", "settings": settings, "tokens_read": read,
                                  "pass_seconds": timings})

    return open_or_build(path, build)


def _check_read(tokens: int, part: int, text: LanguageModelText) -> None:
    if tokens == 0:
        source = [text.corpus, text.val_corpus, text.test_corpus][part]
        raise ValueError(
            f"the {_ROLES[part]} corpus {source!r} holds no tokens; check the path and that "
            "its files hold whitespace-separated text."
        )
