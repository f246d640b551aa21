"""The vocabulary: tokens, their counts and ids, in a deterministic order."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import torch
from torch import Tensor

from nslightning.atomic import atomic_write


class Vocabulary:
    """Tokens ordered by count (descending), ties broken by the token itself.

    Id ``i`` is the ``i``-th token; ``counts[i]`` its corpus frequency.

    Args:
        tokens: the tokens, in id order, without duplicates.
        counts: their frequencies, same length.
    """

    def __init__(self, tokens: Sequence[str], counts: Sequence[int]) -> None:
        if len(tokens) != len(counts):
            raise ValueError(f"{len(tokens)} tokens but {len(counts)} counts; give one each.")
        self.tokens: list[str] = list(tokens)
        self.index: dict[str, int] = {token: i for i, token in enumerate(self.tokens)}
        if len(self.index) != len(self.tokens):
            raise ValueError("the vocabulary contains duplicate tokens.")
        self.counts: Tensor = torch.tensor(list(counts), dtype=torch.int64)

    @classmethod
    def from_counts(
        cls, counts: dict[str, int], min_count: int = 5, max_size: int | None = None
    ) -> Vocabulary:
        """Keeps tokens seen at least ``min_count`` times, at most ``max_size`` of them.

        Raises:
            ValueError: the corpus is empty, or ``min_count`` leaves no token.
        """
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}.")
        if max_size is not None and max_size < 1:
            raise ValueError(f"max_size must be >= 1 or None, got {max_size}.")
        if not counts:
            raise ValueError(
                "the corpus is empty: no tokens were read; check the path and that the files "
                "hold whitespace-separated text."
            )
        kept = sorted(
            ((token, count) for token, count in counts.items() if count >= min_count),
            key=lambda item: (-item[1], item[0]),
        )
        if not kept:
            top = max(counts.values())
            raise ValueError(
                f"min_count={min_count} leaves an empty vocabulary: the most frequent of the "
                f"{len(counts)} distinct tokens occurs {top} time(s); lower min_count to {top} "
                "or less, or use a larger corpus."
            )
        if max_size is not None:
            kept = kept[:max_size]
        return cls([token for token, _ in kept], [count for _, count in kept])

    @classmethod
    def build(
        cls, sentences: Iterable[Sequence[str]], min_count: int = 5, max_size: int | None = None
    ) -> Vocabulary:
        """Counts the tokens of ``sentences`` and applies :meth:`from_counts`."""
        counts: dict[str, int] = {}
        for sentence in sentences:
            for token in sentence:
                counts[token] = counts.get(token, 0) + 1
        return cls.from_counts(counts, min_count=min_count, max_size=max_size)

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: object) -> bool:
        return token in self.index

    def __getitem__(self, token: str) -> int:
        return self.index[token]

    def __iter__(self) -> Iterator[str]:
        return iter(self.tokens)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Vocabulary)
            and self.tokens == other.tokens
            and torch.equal(self.counts, other.counts)
        )

    def __repr__(self) -> str:
        return f"Vocabulary(size={len(self)}, total_count={self.total_count})"

    def fingerprint(self) -> str:
        """SHA-256 of the tokens in id order: equal fingerprints mean equal ids."""
        digest = hashlib.sha256()
        for token in self.tokens:
            digest.update(token.encode("utf-8") + b"\n")
        return digest.hexdigest()

    def checksum(self) -> str:
        """SHA-256 of the tokens and their counts (:meth:`to_text`): equal checksums mean
        equal vocabularies."""
        return hashlib.sha256(self.to_text().encode("utf-8")).hexdigest()

    @property
    def total_count(self) -> int:
        """Number of corpus tokens that the vocabulary covers."""
        return int(self.counts.sum())

    def encode(self, tokens: Iterable[str]) -> list[int]:
        """Ids of the in-vocabulary tokens; out-of-vocabulary tokens are dropped (as word2vec)."""
        index = self.index
        return [index[token] for token in tokens if token in index]

    def to_text(self) -> str:
        """``token<TAB>count`` lines in id order (the format of :meth:`save`)."""
        return "".join(
            f"{token}\t{count}\n"
            for token, count in zip(self.tokens, self.counts.tolist(), strict=True)
        )

    @classmethod
    def from_text(cls, text: str, source: str = "vocabulary") -> Vocabulary:
        """Parses :meth:`to_text`'s format; ``source`` names the text in errors."""
        tokens, counts = [], []
        for number, line in enumerate(text.splitlines(), start=1):
            token, sep, count = line.rpartition("\t")
            if not sep or not count.isdigit():
                raise ValueError(
                    f"{source}:{number}: expected 'token<TAB>count', got {line!r}; this file "
                    "was not written by Vocabulary.save."
                )
            tokens.append(token)
            counts.append(int(count))
        if not tokens:
            raise ValueError(f"vocabulary file {source} is empty.")
        return cls(tokens, counts)

    def save(self, path: str | os.PathLike[str], replace: bool = True) -> None:
        """Writes ``token<TAB>count`` lines in id order, atomically; with ``replace=False`` an
        existing file raises ``FileExistsError``."""
        with atomic_write(path, "w", replace=replace, encoding="utf-8") as handle:
            handle.write(self.to_text())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Vocabulary:
        """Reads a file written by :meth:`save` (ids follow the file's order)."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise OSError(f"cannot read vocabulary file {path}: {error}") from error
        return cls.from_text(text, str(path))
