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
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from nslightning.atomic import atomic_write

ENWIKI_SAMPLE = "enwiki-sample"
_ENWIKI_FILE = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
_CACHE_VERSION = "v1"


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

    106 articles (about 453K tokens) of English Wikipedia, tokenised by gensim's ``WikiCorpus``
    (lower-cased, markup removed), one article per line.
    """
    target = cache_dir() / f"{ENWIKI_SAMPLE}-{_CACHE_VERSION}.txt"
    if target.exists():
        return target
    from gensim.corpora import WikiCorpus
    from gensim.test.utils import datapath

    wiki = WikiCorpus(datapath(_ENWIKI_FILE), dictionary={}, processes=1)
    with atomic_write(target, "w", encoding="utf-8") as handle:
        for tokens in wiki.get_texts():
            handle.write(" ".join(tokens) + "\n")
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


def read_lines(path: Path) -> Iterator[str]:
    """Yields the decoded lines of one (possibly compressed) file, without line endings."""
    bad_lines = 0
    replaced = 0
    try:
        with open_binary(path) as handle:
            for raw in handle:
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError:
                    line = raw.decode("utf-8", errors="replace")
                    bad_lines += 1
                    replaced += line.count("\ufffd") - raw.count("\ufffd".encode())
                yield line.rstrip("\r\n")
    except (OSError, EOFError) as error:
        raise OSError(f"cannot read corpus file {path}: {error}") from error
    if bad_lines:
        warnings.warn(
            f"{path}: {replaced} invalid UTF-8 byte sequence(s) on {bad_lines} line(s) were "
            "replaced by U+FFFD; re-encode the file as UTF-8 to silence this.",
            CorpusWarning,
            stacklevel=2,
        )


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
