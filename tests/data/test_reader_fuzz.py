"""Fuzz tests of the corpus and pair readers with random bytes (hypothesis).

Random byte strings (invalid UTF-8, NULs, ``\\r``, Unicode white space, lines and tokens longer
than a block, no final line end, empty files) are written plain, as ``.gz`` and as ``.bz2`` and
read back with small block sizes, so that every block edge is hit. What the readers document:

* lines end at ``\\n`` only, without their line end (``read_lines`` also drops the ``\\r``\\s
  before it, as the corpus tests expect: ``rstrip("\\r")``); the last line needs no ``\\n``;
* invalid UTF-8 is replaced by U+FFFD exactly as ``bytes.decode("utf-8", "replace")`` does,
  with one :class:`CorpusWarning` per file that counts the replaced sequences;
* sentences are the whitespace tokens (``str.split()``) of the non-empty lines;
* blocks end at a line end, or inside a longer line at white space (``is_open``), and split
  into lines and numbered they give the same tokens per non-empty line, whatever the block
  size and across files;
* a corrupt compressed file is an ``OSError`` naming it; a pair file either parses or raises
  ``ValueError`` naming the file (and the line, when one is at fault).

The examples are derandomized and no hypothesis database is written (see
``tests/samplers/test_properties.py``).
"""

from __future__ import annotations

import bz2
import gzip
import re
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nslightning.data import corpus
from nslightning.data.corpus import CorpusWarning, read_lines, read_sentences, read_text_blocks
from nslightning.data.pair_files import read_pairs
from nslightning.data.text_blocks import LineNumbers, read_blocks, split_block

MAX_EXAMPLES = 60
PROPERTIES = settings(max_examples=MAX_EXAMPLES)  # the rest: the profile in conftest.py

# Pieces that matter to a line and token reader, mixed with arbitrary bytes.
SPECIAL = [
    b"\n", b"\r\n", b"\r", b"\r\r\n", b" ", b"\t", b"  ", b"\x0b", b"\x0c", b"\x00", b"\x1c",
    b"\xff", b"\xfe", b"\x80", b"\xc3", b"\xe2\x82", b"\xf0\x9f\x98", b"\xed\xa0\x80",
    b"\xc0\xaf", "é".encode(), "€".encode(), "😀".encode(), "\ufffd".encode(),
    "\u00a0".encode(), "\u2028".encode(), "\u0085".encode(), "\u3000".encode(), b"word",
    b"a", b"\t\"quoted, id\"", b",", b"\"",
]
pieces = st.one_of(
    st.binary(max_size=12),
    st.sampled_from(SPECIAL),
    st.builds(lambda piece, n: piece * n, st.sampled_from([b"x", b"ab ", b"\xff", b"\n"]),
              st.integers(20, 120)),
)
contents = st.lists(pieces, max_size=30).map(b"".join) | st.binary(max_size=200)
block_sizes = st.integers(1, 48)
formats = st.sampled_from(["", ".gz", ".bz2"])


# ------------------------------------------------------------------------------ files
@contextmanager
def written(*datas: bytes, suffix: str = "") -> Iterator[list[Path]]:
    """Files holding ``datas`` (compressed by ``suffix``), in a fresh folder."""
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for index, data in enumerate(datas):
            path = Path(folder) / f"part{index}.txt{suffix}"
            if suffix == ".gz":
                data = gzip.compress(data)
            elif suffix == ".bz2":
                data = bz2.compress(data)
            path.write_bytes(data)
            paths.append(path)
        yield paths


@contextmanager
def block_size(size: int) -> Iterator[None]:
    """``read_lines`` reads with the module's block size: shrink it to hit block edges."""
    with mock.patch.object(corpus, "BLOCK_BYTES", size):
        yield


# ------------------------------------------------------------------------------ reference
def reference_text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def reference_lines(data: bytes) -> list[str]:
    """Lines at ``\\n`` only; the last one needs no line end; trailing ``\\r``\\s dropped."""
    lines = reference_text(data).split("\n")
    if lines[-1] == "":
        lines.pop()  # after the final line end (or an empty file): no line
    return [line.rstrip("\r") for line in lines]


def reference_sentences(data: bytes) -> list[list[str]]:
    return [tokens for line in reference_lines(data) if (tokens := line.split())]


def replaced_sequences(data: bytes) -> int:
    """How many invalid byte sequences ``decode(errors="replace")`` replaced."""
    return reference_text(data).count("\ufffd") - data.count("\ufffd".encode())


def check_warnings(caught: list[warnings.WarningMessage], datas: tuple[bytes, ...]) -> None:
    """One CorpusWarning per file with invalid UTF-8, counting its replaced sequences."""
    messages = [str(w.message) for w in caught if issubclass(w.category, CorpusWarning)]
    expected = [replaced_sequences(d) for d in datas if replaced_sequences(d)]
    assert len(messages) == len(expected), messages
    for message, count in zip(messages, expected, strict=True):
        assert f": {count} invalid UTF-8 byte sequence(s) on " in message


# ------------------------------------------------------------------------------ corpus readers
@PROPERTIES
@given(data=contents, block=block_sizes, suffix=formats)
def test_read_text_blocks_partitions_the_decoded_text(data: bytes, block: int, suffix: str):
    with written(data, suffix=suffix) as (path,), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        blocks = list(read_text_blocks(path, block))
    check_warnings(caught, (data,))
    assert "".join(text for text, _ in blocks) == reference_text(data)
    for index, (text, is_open) in enumerate(blocks):
        if is_open:
            # Inside a line longer than a block: cut after white space, never at a line end.
            assert "\n" not in text and text[-1:] in (" ", "\t", "\r", "\x0b", "\x0c")
            assert index < len(blocks) - 1, "the last block cannot go on"
        elif index < len(blocks) - 1:
            assert text.endswith("\n"), "a closed block ends at a line end"


@PROPERTIES
@given(data=contents, block=block_sizes | st.none(), suffix=formats)
def test_read_lines_and_sentences_match_the_reference(
    data: bytes, block: int | None, suffix: str
):
    with written(data, suffix=suffix) as (path,), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with block_size(block or corpus.BLOCK_BYTES):
            lines = list(read_lines(path))
            sentences = list(read_sentences(path))
    check_warnings(caught, (data, data))
    assert lines == reference_lines(data)
    assert sentences == reference_sentences(data)


@PROPERTIES
@given(datas=st.lists(contents, min_size=1, max_size=3), block=block_sizes, suffix=formats)
def test_numbered_blocks_give_the_tokens_of_every_non_empty_line(
    datas: list[bytes], block: int, suffix: str
):
    # The token store's passes: blocks split into line pieces, numbered across files.
    expected = [tokens for data in datas for tokens in reference_sentences(data)]
    with written(*datas, suffix=suffix) as paths, warnings.catch_warnings():
        warnings.simplefilter("ignore", CorpusWarning)
        numbers = LineNumbers()
        lines: dict[int, list[str]] = {}
        starts: list[int] = []
        ends: list[int] = []
        for raw in read_blocks(paths, block):
            tokens, lengths = split_block(raw.text)
            assert int(lengths.sum()) == len(tokens)
            line_of, start, end = numbers.number(lengths, raw.continues, raw.is_open)
            offsets = np.concatenate([[0], np.cumsum(lengths)])
            for piece, line in enumerate(line_of.tolist()):
                assert (line >= 0) or lengths[piece] == 0, "tokens outside any line"
                if line >= 0:
                    lines.setdefault(line, []).extend(tokens[offsets[piece] : offsets[piece + 1]])
            starts += line_of[start].tolist()
            ends += line_of[end].tolist()
    assert [lines[n] for n in sorted(lines)] == expected
    assert sorted(lines) == list(range(len(expected))) == starts == ends
    assert numbers.next_line == len(expected)


def corrupted(data: bytes, suffix: str, position: int, value: int, cut: int) -> bytes:
    """A compressed ``data`` with one byte changed and maybe cut short."""
    packed = gzip.compress(data) if suffix == ".gz" else bz2.compress(data)
    raw = bytearray(packed)
    raw[position % len(raw)] ^= value
    return bytes(raw[: max(len(raw) - cut, 0)])


@PROPERTIES
@given(
    data=contents,
    suffix=st.sampled_from([".gz", ".bz2"]),
    position=st.integers(0, 10**6),
    value=st.integers(1, 255),
    cut=st.integers(0, 40) | st.just(0),
    random_bytes=st.booleans(),
)
def test_corrupt_compressed_files_are_an_os_error_naming_them(
    data: bytes, suffix: str, position: int, value: int, cut: int, random_bytes: bool
):
    raw = data if random_bytes else corrupted(data, suffix, position, value, cut)
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore", CorpusWarning)
        path = Path(folder) / f"corpus.txt{suffix}"
        path.write_bytes(raw)
        try:
            list(read_text_blocks(path, 16))
            list(read_lines(path))
        except OSError as error:
            assert str(path) in str(error)


# ------------------------------------------------------------------------------ pair files
def check_pair_error(error: ValueError, path: Path, lines: int) -> None:
    """A pair file's error names the file, and the line when one line is at fault."""
    message = str(error)
    assert str(path) in message
    found = re.match(re.escape(str(path)) + r":(\d+): ", message)
    if found is None:
        assert "holds no pairs" in message, message
    else:
        assert 1 <= int(found.group(1)) <= max(lines, 1), message


@PROPERTIES
@given(
    data=contents,
    name=st.sampled_from(["pairs.tsv", "pairs.csv", "pairs.txt.gz", "pairs.csv.bz2"]),
    header=st.booleans(),
)
def test_pair_files_of_random_bytes_parse_or_name_the_line(data: bytes, name: str, header: bool):
    with written(data) as (plain,), warnings.catch_warnings():
        warnings.simplefilter("ignore", CorpusWarning)
        path = plain.with_name(name)
        if name.endswith(".gz"):
            path.write_bytes(gzip.compress(data))
        elif name.endswith(".bz2"):
            path.write_bytes(bz2.compress(data))
        else:
            path.write_bytes(data)
        try:
            table = read_pairs(path, header=header)
        except ValueError as error:
            check_pair_error(error, path, len(reference_lines(data)))
            return
    assert len(table) > 0
    assert len(table.anchors) == len(table.items) <= len(reference_lines(data))
    assert all(name and name == name.strip() for name in table.names)


# Fields for tab-separated rows: ids (maybe padded with spaces, maybe blank), weights.
ids = st.text(
    alphabet=st.characters(exclude_categories=("Cs",), exclude_characters="\t\n\r"),
    max_size=6,
)
weights = st.sampled_from(["1", "0", "2.5", " 3 ", "-1", "nan", "inf", "1e3", "x", ""])
rows = st.lists(
    st.one_of(
        st.tuples(ids, ids),
        st.tuples(ids, ids, weights | ids),
        st.tuples(ids),
        st.tuples(ids, ids, weights, ids),
        st.just(()),
    ),
    max_size=8,
)


def reference_pairs(
    rows: list[tuple[str, ...]], header: bool
) -> tuple[list[tuple[str, str, float | None]], int | None]:
    """``read_pairs``'s documented rules for tab-separated lines: the pairs, or the line of
    the first error (``None`` when the error is "no pairs")."""
    pairs: list[tuple[str, str, float | None]] = []
    width = 0
    for number, row in enumerate(rows[header:], start=1 + header):
        fields = [field.strip() for field in row]
        if not any(fields):
            continue  # a blank line
        if len(fields) not in (2, 3) or not fields[0] or not fields[1]:
            return pairs, number
        if width and len(fields) != width:
            return pairs, number
        width = len(fields)
        weight = None
        if width == 3:
            try:
                weight = float(fields[2])
            except ValueError:
                return pairs, number
            if not weight >= 0 or weight == float("inf"):
                return pairs, number
        pairs.append((fields[0], fields[1], weight))
    return pairs, (None if pairs else 0)


@PROPERTIES
@given(rows=rows, header=st.booleans(), final_newline=st.booleans(), crlf=st.booleans())
def test_tab_separated_rows_match_the_documented_rules(
    rows: list[tuple[str, ...]], header: bool, final_newline: bool, crlf: bool
):
    end = "\r\n" if crlf else "\n"
    text = end.join("\t".join(row) for row in rows) + (end if final_newline and rows else "")
    pairs, error_line = reference_pairs(rows, header)
    with written(text.encode("utf-8")) as (plain,):
        path = plain.with_name("pairs.tsv")
        path.write_bytes(text.encode("utf-8"))
        if error_line is not None:
            with pytest.raises(ValueError) as raised:
                read_pairs(path, header=header)
            message = str(raised.value)
            if error_line == 0:
                assert f"pair file {path} holds no pairs" in message
            else:
                assert message.startswith(f"{path}:{error_line}: "), message
            return
        table = read_pairs(path, header=header)
    got = [
        (table.names[a], table.names[i], None if table.weights is None else float(w))
        for a, i, w in zip(
            table.anchors.tolist(), table.items.tolist(),
            [None] * len(table) if table.weights is None else table.weights.tolist(),
            strict=True,
        )
    ]
    assert got == pairs
