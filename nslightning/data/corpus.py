"""Corpus readers: files, folders, globs, ``.gz``/``.bz2``, and the built-in ``enwiki-sample``.

A corpus is a sequence of sentences (or documents), one per line, tokens separated by white
space. Bytes that are not valid UTF-8 are replaced by U+FFFD, with one warning per file that
counts them.
"""

from __future__ import annotations

import bz2
import glob
import gzip
import os
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from nslightning.atomic import atomic_write

ENWIKI_SAMPLE = "enwiki-sample"
_ENWIKI_FILE = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
_CACHE_VERSION = "v2"  # v1 could hold a corpus cut short by Ctrl-C


class CorpusWarning(UserWarning):
    """Something in a corpus that changes what is read: invalid UTF-8, pruned counts."""


def cache_dir() -> Path:
    """The cache folder: ``$NSLIGHTNING_CACHE``, else ``$XDG_CACHE_HOME/nslightning``."""
    if env := os.environ.get("NSLIGHTNING_CACHE"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "nslightning"


def builtin_corpora() -> tuple[str, ...]:
    """Names accepted in place of a path."""
    return (ENWIKI_SAMPLE,)


def enwiki_sample_path() -> Path:
    """Path of the tokenised Wikipedia sample that gensim bundles, built once and cached.

    106 articles (about 453K tokens) of English Wikipedia, tokenised as gensim's ``WikiCorpus``
    does (lower-cased, markup removed, articles under 50 tokens and non-article namespaces
    dropped), one article per line.

    The articles are read in this process with gensim's page parser and tokenizer, not through
    ``WikiCorpus.get_texts``: that runs a worker pool, which outlives a killed parent, and it
    catches ``KeyboardInterrupt`` and ends as if the corpus were complete. Here an interrupt
    propagates, and the file is committed (renamed into place) only once the parser has read
    the whole XML document.
    """
    target = cache_dir() / f"{ENWIKI_SAMPLE}-{_CACHE_VERSION}.txt"
    if target.exists():
        return target
    from gensim.corpora import wikicorpus
    from gensim.test.utils import datapath

    articles = 0
    with bz2.open(datapath(_ENWIKI_FILE)) as xml, atomic_write(
        target, "w", encoding="utf-8"
    ) as handle:
        for title, text, page_id in wikicorpus.extract_pages(xml, ("0",)):
            tokens, _, _ = wikicorpus.process_article((text, title, page_id))
            ignored = any(title.startswith(f"{space}:") for space in wikicorpus.IGNORED_NAMESPACES)
            if len(tokens) < wikicorpus.ARTICLE_MIN_WORDS or ignored:
                continue
            handle.write(" ".join(tokens) + "\n")
            articles += 1
        if articles == 0:  # leaving the block by an exception commits nothing
            raise RuntimeError(f"gensim's {_ENWIKI_FILE} gave no article; reinstall gensim.")
    return target


def resolve_paths(source: str | os.PathLike[str]) -> list[Path]:
    """Expands a corpus source into files.

    Args:
        source: a built-in name (see :func:`builtin_corpora`), a file, a folder (all files below
            it, recursively, hidden ones skipped, in sorted order) or a glob pattern.

    Raises:
        FileNotFoundError: nothing matches ``source``.
    """
    text = os.fspath(source)
    if text == ENWIKI_SAMPLE:
        return [enwiki_sample_path()]
    path = Path(text).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(
            p
            for p in path.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
        )
        if not files:
            raise FileNotFoundError(f"corpus folder {path} contains no files.")
        return files
    if glob.has_magic(text):
        files = sorted(Path(p) for p in glob.glob(os.path.expanduser(text), recursive=True))
        files = [p for p in files if p.is_file()]
        if not files:
            raise FileNotFoundError(f"corpus pattern {text!r} matches no files.")
        return files
    raise FileNotFoundError(
        f"corpus {text!r} not found: give a file, a folder, a glob pattern or one of "
        f"{', '.join(builtin_corpora())}."
    )


def open_binary(path: Path) -> IO[bytes]:
    """Opens a corpus file for reading bytes, decompressing ``.gz`` and ``.bz2``."""
    if path.suffix == ".gz":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    if path.suffix == ".bz2":
        return bz2.open(path, "rb")
    return open(path, "rb")


BLOCK_BYTES = 1 << 22
_WHITESPACE = (b" ", b"\t", b"\r", b"\x0b", b"\x0c")


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
    is then ``True`` (the line goes on in the next block). Bytes that are not UTF-8 are
    replaced by U+FFFD, with one warning per file that counts them.
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
    except (OSError, EOFError, zlib.error) as error:  # zlib: a corrupt .gz body
        raise OSError(f"cannot read corpus file {path}: {error}") from error
    if tally[0]:
        warnings.warn(
            f"{path}: {tally[1]} invalid UTF-8 byte sequence(s) on {tally[0]} line(s) were "
            "replaced by U+FFFD; re-encode the file as UTF-8 to silence this.",
            CorpusWarning,
            stacklevel=2,
        )


def read_lines(path: Path) -> Iterator[str]:
    """Yields the decoded lines of one (possibly compressed) file, without line endings.

    Lines end at ``\\n`` only; invalid UTF-8 is replaced as :func:`read_text_blocks` says.
    """
    partial = ""  # the beginning of a line longer than a block
    for text, is_open in read_text_blocks(path):
        lines = text.split("\n")
        if len(lines) > 1 and text.endswith("\n"):
            lines.pop()
        lines[0] = partial + lines[0]
        partial = lines.pop() if is_open else ""
        for line in lines:
            yield line.rstrip("\r")


def read_sentences(source: str | os.PathLike[str]) -> Iterator[list[str]]:
    """Yields the whitespace tokens of every non-empty line of a corpus.

    Args:
        source: see :func:`resolve_paths`.
    """
    for path in resolve_paths(source):
        for line in read_lines(path):
            tokens = line.split()
            if tokens:
                yield tokens
