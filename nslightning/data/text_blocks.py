"""A corpus as blocks of tokenised lines: the streaming input of the token store's passes.

Reading a line at a time costs a Python round trip per line; the passes take a few MiB at once
(:func:`~nslightning.data.corpus.read_text_blocks`), split them into lines (at ``\\n`` only)
and lines into whitespace tokens, and number the non-empty lines across the whole corpus. A
line longer than a block (a whole corpus on one line, as text8) is cut at white space and its
pieces keep one line number, so memory stays bounded by the block size.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import numpy as np

from nslightning.data.corpus import read_text_blocks


@dataclass(frozen=True)
class RawBlock:
    """Decoded text of a corpus, a block at a time.

    Attributes:
        text: whole lines, or a piece of a line longer than a block.
        continues: the first piece goes on with the previous block's last line.
        is_open: the last piece goes on in the next block.
    """

    text: str
    continues: bool
    is_open: bool


def read_blocks(paths: list[Path], block_bytes: int | None = None) -> Iterator[RawBlock]:
    """The blocks of several files, one after the other (a file ends its last line)."""
    for path in paths:
        continues = False
        for text, is_open in read_text_blocks(path, block_bytes):
            yield RawBlock(text, continues, is_open)
            continues = is_open


def split_block(text: str) -> tuple[list[str], np.ndarray]:
    """The whitespace tokens of a block, and ``(L,)`` int64 tokens of each of its ``L`` line
    pieces (0 for an empty line)."""
    pieces = list(map(str.split, text.split("\n")))
    if len(pieces) > 1 and text.endswith("\n"):
        pieces.pop()  # the empty string after the block's last line end
    lengths = np.fromiter(map(len, pieces), dtype=np.int64, count=len(pieces))
    return list(chain.from_iterable(pieces)), lengths


@dataclass
class LineNumbers:
    """Numbers the non-empty lines of a corpus from 0 as its blocks go by.

    Attributes:
        next_line: the number the next new line gets.
        open_line: the number of a non-empty line that goes on in the next block, or -1.
    """

    next_line: int = 0
    open_line: int = -1

    def number(
        self, lengths: np.ndarray, continues: bool, is_open: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Numbers the pieces of one block (see :class:`RawBlock`).

        Args:
            lengths: ``(L,)`` tokens of each piece.

        Returns:
            ``lines (L,)`` int64 number of each piece's line, -1 for a piece of an empty line;
            ``starts (L,)`` bool, the first piece with tokens of a line; ``ends (L,)`` bool,
            the last piece of a non-empty line.
        """
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
        return lines, starts, ends
