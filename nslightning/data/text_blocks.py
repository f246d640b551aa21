"""A corpus read in large blocks of tokenised lines: the streaming input of the token store.

Reading a line at a time costs a Python round trip per line; these readers decode a few MiB at
once, split them into lines (at ``\\n`` only, as :func:`~nslightning.data.corpus.read_lines`) and
lines into whitespace tokens, and number the non-empty lines across the whole corpus. A line
longer than a block (a whole corpus on one line, as text8) is cut at white space and its pieces
keep one line number, so memory stays bounded by the block size.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import numpy as np

from nslightning.data.corpus import open_binary, resolve_paths

BLOCK_BYTES = 1 << 22
_WHITESPACE = (b" ", b"\t", b"\r", b"\x0b", b"\x0c")


@dataclass
class TokenBlock:
    """The tokens of consecutive lines (or pieces of a line) of a corpus.

    Attributes:
        tokens: the ``N`` tokens, line after line.
        lengths: ``(L,)`` int64 number of tokens of each line piece (0 for an empty line).
        lines: ``(L,)`` int64 number of the line each piece belongs to, counted over the
            non-empty lines of the whole corpus from 0; -1 for a piece without tokens.
        starts: ``(L,)`` bool, ``True`` where a piece is the first with tokens of its line.
        ends: ``(L,)`` bool, ``True`` where a piece closes a non-empty line (its last piece).
    """

    tokens: list[str]
    lengths: np.ndarray
    lines: np.ndarray
    starts: np.ndarray
    ends: np.ndarray

    def token_lines(self) -> np.ndarray:
        """``(N,)`` int64 line number of each token."""
        return np.repeat(self.lines, self.lengths)


def _decode(raw: bytes, path: Path, tally: list[int]) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pieces = []
        for line in raw.split(b"\n"):
            try:
                pieces.append(line.decode("utf-8"))
            except UnicodeDecodeError:
                text = line.decode("utf-8", errors="replace")
                tally[0] += 1
                tally[1] += text.count("\ufffd") - line.count("\ufffd".encode())
                pieces.append(text)
        return "\n".join(pieces)


def read_text_blocks(path: Path, block_bytes: int | None = None) -> Iterator[tuple[str, bool]]:
    """Yields ``(text, open)``: the decoded text of one file in blocks of about ``block_bytes``
    (default :data:`BLOCK_BYTES`).

    A block ends at a line end, or, inside a line longer than a block, at white space; ``open``
    is then ``True`` (the line goes on in the next block). Invalid UTF-8 is replaced by U+FFFD,
    with one warning per file that counts it, as :func:`~nslightning.data.corpus.read_lines`.
    """
    block_bytes = block_bytes or BLOCK_BYTES
    tally = [0, 0]  # lines with invalid bytes, replaced sequences
    pending = b""
    is_open = False
    try:
        with open_binary(path) as handle:
            while chunk := handle.read(block_bytes):
                data = pending + chunk if pending else chunk
                cut = data.rfind(b"\n") + 1
                is_open = cut == 0
                if is_open:
                    cut = max(data.rfind(space) for space in _WHITESPACE) + 1
                if cut == 0:  # no line end nor white space yet: a very long token
                    pending = data
                    continue
                pending = data[cut:]
                yield _decode(data[:cut], path, tally), is_open
            if pending or is_open:  # the file's last line, or the end of an open one
                yield _decode(pending, path, tally), False
    except (OSError, EOFError) as error:
        raise OSError(f"cannot read corpus file {path}: {error}") from error
    if tally[0]:
        warnings.warn(
            f"{path}: {tally[1]} invalid UTF-8 byte sequence(s) on {tally[0]} line(s) were "
            "replaced by U+FFFD; re-encode the file as UTF-8 to silence this.",
            stacklevel=2,
        )


class _LineNumbers:
    """Numbers the non-empty lines of a corpus as its blocks go by."""

    def __init__(self) -> None:
        self.next_line = 0
        self.open_line = -1  # number of a non-empty line that goes on in the next block, or -1

    def block(
        self, tokens: list[str], lengths: np.ndarray, continues: bool, is_open: bool
    ) -> TokenBlock:
        """Numbers the pieces of one block; ``continues``: its first piece goes on with the
        previous block's last line; ``is_open``: its last piece goes on in the next block."""
        carried = continues and self.open_line >= 0
        starts = lengths > 0
        if carried:
            starts[0] = False
        lines = np.full(lengths.shape, -1, dtype=np.int64)
        new = int(starts.sum())
        lines[starts] = self.next_line + np.arange(new, dtype=np.int64)
        self.next_line += new
        if carried:
            lines[0] = self.open_line
        ends = lines >= 0
        if is_open:
            ends[-1] = False
        self.open_line = int(lines[-1]) if is_open else -1
        return TokenBlock(tokens, lengths, lines, starts, ends)


def token_blocks(
    source: str | os.PathLike[str] | list[Path], block_bytes: int | None = None
) -> Iterator[TokenBlock]:
    """Yields the corpus as :class:`TokenBlock`\\ s, its non-empty lines numbered from 0.

    Args:
        source: a corpus (see :func:`~nslightning.data.corpus.resolve_paths`) or its files.
        block_bytes: bytes read at once (default :data:`BLOCK_BYTES`).
    """
    paths = source if isinstance(source, list) else resolve_paths(source)
    numbers = _LineNumbers()
    for path in paths:
        continues = False
        for text, is_open in read_text_blocks(path, block_bytes):
            split = list(map(str.split, text.split("\n")))
            if not is_open and split and not split[-1] and text.endswith("\n"):
                split.pop()  # the empty string after the block's last line end
            lengths = np.fromiter(map(len, split), dtype=np.int64, count=len(split))
            yield numbers.block(list(chain.from_iterable(split)), lengths, continues, is_open)
            continues = is_open
