"""Pair files: two-column TSV/CSV relations (``anchor, item[, weight]``) and built-in relations.

Built-in relations, made from files that gensim ships (offline):

- ``lee-doc-words``: document -> word pairs of gensim's Lee corpus, the 300 background
  documents (``bg:0`` ...) and the 50 documents with human similarity judgments (``lee:0`` ...
  ``lee:49``); words lower-cased by ``gensim.utils.simple_preprocess``, stop words removed,
  weight = the word's count in the document (a PV-DBOW training set).
- ``lee-background-doc-words``: the same pairs for the 300 background documents only; the 50
  judged documents are held out entirely (no pair), e.g. to encode them inductively from their
  words (``BagOfFeatures`` over the side data ``lee-doc-bags``) and compare the encodings with
  the human judgments.
- ``gensim-hypernyms``: the 95 WordNet mammal (hyponym, hypernym) pairs of gensim's Poincaré
  tests (19 of them self-pairs).
"""

from __future__ import annotations

import csv
import math
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from nslightning.data.corpus import read_lines
from nslightning.data.pair_table import PairTable, PairTableBuilder

LEE_DOC_WORDS = "lee-doc-words"
LEE_BACKGROUND_DOC_WORDS = "lee-background-doc-words"
GENSIM_HYPERNYMS = "gensim-hypernyms"


def builtin_relations() -> tuple[str, ...]:
    """Names accepted in place of a pair file."""
    return (LEE_DOC_WORDS, LEE_BACKGROUND_DOC_WORDS, GENSIM_HYPERNYMS)


def read_pairs(
    source: str | os.PathLike[str], delimiter: str | None = None, header: bool = False
) -> PairTable:
    """Reads a relation: a built-in name or a two- or three-column TSV/CSV file.

    Args:
        source: a built-in name (:func:`builtin_relations`) or a file (``.gz``/``.bz2`` read
            transparently).
        delimiter: the column separator; by default ``,`` for ``.csv`` files and a tab
            otherwise. Comma-separated files follow CSV quoting (``"a, b"`` is one field);
            other delimiters take every character literally (a ``"`` is part of an id).
        header: the first line names the columns and is skipped.

    Returns:
        the pairs in file order, as int32 codes of the distinct string ids (a file is read a
        line at a time; memory grows by 8 bytes per pair, 16 with weights, plus each distinct
        id once).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: a line has fewer than two or more than three columns, an empty id, a weight
            that is not a finite number ``>= 0``, or the file holds no pairs.
    """
    text = os.fspath(source)
    if text == LEE_DOC_WORDS:
        return lee_document_words()
    if text == LEE_BACKGROUND_DOC_WORDS:
        return lee_document_words(judged=False)
    if text == GENSIM_HYPERNYMS:
        from gensim.test.utils import datapath

        return read_pairs(datapath("poincare_hypernyms_large.tsv"))
    path = Path(text).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"pair file {text!r} not found: give a TSV/CSV file of 'anchor<TAB>item[<TAB>weight]' "
            f"lines or one of {', '.join(builtin_relations())}."
        )
    if delimiter is None:
        delimiter = "," if ".csv" in (suffix.lower() for suffix in path.suffixes) else "\t"
    lines = read_lines(path)
    if header:
        next(lines, None)
    pairs = PairTableBuilder()
    width = 0
    if delimiter == ",":
        rows = csv.reader(lines, delimiter=delimiter)
    else:
        rows = csv.reader(lines, delimiter=delimiter, quoting=csv.QUOTE_NONE)
    for number, row in enumerate(_split_lines(rows, path, header), start=1 + header):
        if not row or all(not field.strip() for field in row):
            continue
        fields = [field.strip() for field in row]
        if len(fields) not in (2, 3) or not fields[0] or not fields[1]:
            shown = delimiter.join(row)
            raise ValueError(
                f"{path}:{number}: expected 'anchor{_name(delimiter)}item' with an optional "
                f"weight column, got {shown!r}; check the delimiter (--data.delimiter) and that "
                "no column is missing."
            )
        if width and len(fields) != width:
            raise ValueError(
                f"{path}:{number}: {len(fields)} columns where earlier lines have {width}; give "
                "every line a weight or none."
            )
        width = len(fields)
        weight = _weight(fields[2], path, number, header) if width == 3 else None
        pairs.add(fields[0], fields[1], weight)
    if not len(pairs):
        raise ValueError(f"pair file {path} holds no pairs; it is empty or only has a header.")
    return pairs.build()


def _split_lines(rows: Iterator[list[str]], path: Path, header: bool) -> Iterator[list[str]]:
    """The rows of a csv reader; a line it cannot split (a carriage return inside it, a field
    over csv's size limit) is a ``ValueError`` naming the file and line."""
    number = int(header)
    while True:
        number += 1
        try:
            row = next(rows)
        except StopIteration:
            return
        except csv.Error as error:
            raise ValueError(
                f"{path}:{number}: cannot split the line into columns ({error}); line ends must "
                f"be \\n or \\r\\n and ids at most {csv.field_size_limit()} characters long."
            ) from None
        yield row


def _weight(text: str, path: Path, number: int, header: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        hint = "" if header else " (if the first line names the columns, pass --data.header true)"
        raise ValueError(f"{path}:{number}: weight {text!r} is not a number{hint}.") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{path}:{number}: weight {text!r} must be a finite number >= 0.")
    return value


def _name(delimiter: str) -> str:
    return "<TAB>" if delimiter == "\t" else delimiter


def lee_documents(judged: bool = True) -> Iterator[tuple[str, list[str]]]:
    """Yields ``(name, words)`` for each document of gensim's Lee corpus, in file order.

    The 300 background documents are ``bg:0`` ... ``bg:299``, then (with ``judged``) the 50
    documents with human similarity judgments ``lee:0`` ... ``lee:49``. Words are those of
    ``gensim.utils.simple_preprocess`` (lower-cased tokens) minus gensim's stop words, every
    occurrence in reading order. The one tokenisation of the Lee built-ins (the relations here
    and the side data ``lee-doc-bags`` of :mod:`nslightning.data.feature_bags`).
    """
    from gensim.parsing.preprocessing import STOPWORDS
    from gensim.test.utils import datapath
    from gensim.utils import simple_preprocess

    files = (("bg", "lee_background.cor"), ("lee", "lee.cor"))
    for prefix, name in files if judged else files[:1]:
        # The Lee files are Latin-1 (one byte is not valid UTF-8).
        text = Path(datapath(name)).read_bytes().decode("latin-1")
        for number, line in enumerate(text.splitlines()):
            yield f"{prefix}:{number}", [w for w in simple_preprocess(line) if w not in STOPWORDS]


def lee_document_words(judged: bool = True) -> PairTable:
    """Document -> word pairs of gensim's Lee corpus, weighted by counts (see the module).

    Args:
        judged: include the 50 judged documents ``lee:*`` (``lee-doc-words``); without them,
            the 300 background documents only (``lee-background-doc-words``).
    """
    pairs = PairTableBuilder()
    for document, words in lee_documents(judged):
        for word, count in sorted(Counter(words).items()):
            pairs.add(document, word, float(count))
    return pairs.build()
