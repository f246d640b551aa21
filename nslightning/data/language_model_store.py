"""The language model's text as a token store with train, val and test sections, cached.

One corpus is split by document (line): pass 1 measures the lines, the split is drawn from
their lengths (:func:`~nslightning.data.language_model_text.split_assignment`), pass 2 counts
the training lines' tokens and pass 3 writes the ids, ``<eos>`` after each line and ``<unk>``
for unknown tokens, into the section of its line. With three corpora, pass 1 counts the
training corpus and pass 2 writes each corpus into its section. Each section keeps the corpus
order of its lines, so a split is one slice of the store.
"""

from __future__ import annotations

import os
import time
from array import array
from collections import Counter
from dataclasses import dataclass, replace
from itertools import compress, repeat
from pathlib import Path

import numpy as np

from nslightning.data.block_workers import (
    check_workers,
    context,
    map_blocks,
    worker_count,
)
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
from nslightning.data.text_blocks import LineNumbers, RawBlock, read_blocks, split_block
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


def _measure(block: RawBlock) -> tuple[RawBlock, np.ndarray]:
    """Worker: the tokens of each line piece of a block."""
    return replace(block, text=""), split_block(block.text)[1]


def _line_lengths(paths: list[Path], workers: int) -> tuple[np.ndarray, list[LineNumbers]]:
    """``(S,)`` int64 tokens per non-empty line (8 bytes per line: 320 MB for 40M lines),
    and the line numbering's state at the start of each block."""
    lengths = array("q")
    numbers = LineNumbers()
    states = []
    with map_blocks(_measure, read_blocks(paths), workers) as measured:
        for block, pieces in measured:
            states.append(replace(numbers))
            lines, _, _ = numbers.number(pieces, block.continues, block.is_open)
            real = lines >= 0
            line_numbers, sizes = lines[real], pieces[real]
            if line_numbers.size and line_numbers[0] < len(lengths):  # a line begun before
                lengths[int(line_numbers[0])] += int(sizes[0])
                sizes = sizes[1:]
            lengths.extend(sizes.tolist())
    return (np.frombuffer(lengths, dtype=np.int64) if lengths else np.zeros(0, np.int64)), states


def _count_all(block: RawBlock) -> tuple[RawBlock, Counter[str], np.ndarray]:
    """Worker: a block's token counts and the tokens of each line piece."""
    tokens, lengths = split_block(block.text)
    return replace(block, text=""), Counter(tokens), lengths


def _count_training(item: tuple[RawBlock, LineNumbers]) -> Counter[str]:
    """Worker: the counts of the tokens of a block's training lines (``context()["keep"]``)."""
    block, state = item
    tokens, lengths = split_block(block.text)
    lines, _, _ = replace(state).number(lengths, block.continues, block.is_open)
    keep = context()["keep"][np.repeat(lines, lengths)]
    return Counter(compress(tokens, keep.tolist()))


def _count(paths: list[Path], limit: int | None, source: str, workers: int,
           keep: np.ndarray | None = None, states: list[LineNumbers] | None = None,
           ) -> tuple[TokenCounter, int]:
    """Counts the tokens of every line, or of the lines where ``keep`` (``(S,)`` bool, with
    the numbering ``states`` of :func:`_line_lengths`); returns the counter and the number of
    counted lines."""
    counter = TokenCounter(limit)
    if keep is None:
        numbers = LineNumbers()
        with map_blocks(_count_all, read_blocks(paths), workers) as counted:
            for block, counts, lengths in counted:
                counter.update(counts)
                numbers.number(lengths, block.continues, block.is_open)
        lines = numbers.next_line
    else:
        assert states is not None, "counting a split needs the numbering of its lines"
        items = zip(read_blocks(paths), states, strict=True)
        with map_blocks(_count_training, items, workers, keep=keep) as counted_lines:
            for counts in counted_lines:
                counter.update(counts)
        lines = int(keep.sum())
    counter.warn_if_pruned(source)
    return counter, lines


def _ids(block: RawBlock) -> tuple[RawBlock, np.ndarray, np.ndarray]:
    """Worker: a block's ids (``<unk>`` for unknown tokens) and the tokens of each piece."""
    tokens, lengths = split_block(block.text)
    index, unk = context()["index"], context()["unk"]
    ids = np.fromiter(map(index.get, tokens, repeat(unk)), dtype=np.int32, count=len(tokens))
    return replace(block, text=""), ids, lengths


def _encode(paths: list[Path], vocabulary: Vocabulary, writer: TokenStoreWriter, workers: int,
            assignment: np.ndarray | None, section: int) -> int:
    """Writes ids with ``<eos>`` after each line into the section of its line (``assignment``,
    ``(S,)`` int8) or into ``section``; returns the number of tokens read."""
    eos = vocabulary[EOS]
    numbers = LineNumbers()
    read = 0
    shared = {"index": vocabulary.index, "unk": vocabulary[UNK]}
    with map_blocks(_ids, read_blocks(paths), workers, **shared) as encoded:
        for block, ids, lengths in encoded:
            lines, _, ends = numbers.number(lengths, block.continues, block.is_open)
            closing = np.cumsum(lengths)[ends]
            with_eos = np.insert(ids, closing, eos)
            read += len(ids)
            if assignment is None:
                writer.append(with_eos, section)
                continue
            parts = np.insert(assignment[np.repeat(lines, lengths)], closing,
                              assignment[lines[ends]])
            for part in range(len(SECTIONS)):
                writer.append(with_eos[parts == part], part)
    return read


def language_model_store(
    text: LanguageModelText,
    vocabulary: str | os.PathLike[str] | None = None,
    workers: int | None = None,
) -> TokenStore:
    """The token store of a language model's text, from the cache or built now.

    Args:
        text: the corpora, split and vocabulary settings.
        vocabulary: a vocabulary file (``Vocabulary.save``, with ``<unk>`` and ``<eos>``) to
            encode with instead of building one from the training text.
        workers: processes that read the text (see
            :func:`~nslightning.data.block_workers.worker_count`); the store is the same.

    Raises:
        ValueError: an empty corpus, bad split fractions, too few lines to split, or a
            vocabulary without ``<unk>`` and ``<eos>``.
    """
    check_vocabulary_size(text.min_count, text.max_size)
    check_workers(workers)
    sources = [text.corpus] if text.is_split else [text.corpus, text.val_corpus, text.test_corpus]
    paths = [resolve_paths(source) for source in sources if source is not None]
    given = Vocabulary.load(vocabulary) if vocabulary is not None else None
    settings: dict[str, object] = {"split": None}
    if text.is_split:  # the files' fingerprints say which corpus
        settings["split"] = [text.val_fraction, text.test_fraction, text.split_seed]
    if given is not None:
        check_specials(given)
        settings["vocabulary_sha256"] = given.checksum()
    else:
        settings["vocabulary"] = [text.min_count, text.max_size, text.count_limit]
    path = store_path("lm", {"files": [files_fingerprint(p) for p in paths], **settings})

    def build(target: Path) -> None:
        timings: dict[str, float] = {}
        processes = worker_count(workers, [p for files in paths for p in files])
        began = time.perf_counter()
        assignment = states = None
        if text.is_split:
            lengths, states = _line_lengths(paths[0], processes)
            _check_read(int(lengths.sum()), 0, text)
            assignment = split_assignment(lengths, text.val_fraction, text.test_fraction,
                                          text.split_seed)
            del lengths  # only the assignment, 1 byte per line, is kept
            timings["lines"] = time.perf_counter() - began
        vocab = given
        if vocab is None:
            began = time.perf_counter()
            keep = None if assignment is None else assignment == 0
            counter, lines = _count(paths[0], text.count_limit, text.corpus, processes, keep,
                                    states)
            _check_read(counter.counts.total() + counter.pruned_tokens, 0, text)
            vocab = vocabulary_from_counts(counter.counts, lines, text.min_count, text.max_size,
                                           pruned=counter.pruned_tokens)
            timings["count"] = time.perf_counter() - began
        began = time.perf_counter()
        read = 0
        with TokenStoreWriter(target, SECTIONS) as writer:
            if assignment is not None:
                read = _encode(paths[0], vocab, writer, processes, assignment, 0)
            else:
                for part, files in enumerate(paths):
                    tokens = _encode(files, vocab, writer, processes, None, part)
                    _check_read(tokens, part, text)
                    read += tokens
            timings["encode"] = time.perf_counter() - began
            writer.commit(vocab, {"kind": "lm", "settings": settings, "tokens_read": read,
                                  "workers": processes, "pass_seconds": timings})

    return open_or_build(path, build, [p for files in paths for p in files])


def _check_read(tokens: int, part: int, text: LanguageModelText) -> None:
    if tokens == 0:
        source = [text.corpus, text.val_corpus, text.test_corpus][part]
        raise ValueError(
            f"the {_ROLES[part]} corpus {source!r} holds no tokens; check the path and that "
            "its files hold whitespace-separated text."
        )
