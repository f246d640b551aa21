"""read_pairs: TSV/CSV pair files, their errors, and the built-in relations (offline)."""

from __future__ import annotations

import csv
import gzip
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from nslightning.data.pair_files import builtin_relations, lee_document_words, read_pairs
from nslightning.data.pair_table import PairTable


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@dataclass
class Rows:
    """A pair table decoded to lists of strings (and weights)."""

    anchors: list[str]
    items: list[str]
    weights: list[float] | None

    def __len__(self) -> int:
        return len(self.anchors)


def decoded(table: PairTable) -> Rows:
    names = table.names
    return Rows(
        [names[i] for i in table.anchors.tolist()],
        [names[i] for i in table.items.tolist()],
        None if table.weights is None else table.weights.tolist(),
    )


def read(*args, **kwargs) -> Rows:
    return decoded(read_pairs(*args, **kwargs))


# ---------------------------------------------------------------- formats
def test_tsv_two_columns(tmp_path: Path) -> None:
    table = read(write(tmp_path / "pairs.tsv", "a\tx\nb\ty\na\tz\n"))
    assert table.anchors == ["a", "b", "a"]
    assert table.items == ["x", "y", "z"]
    assert table.weights is None
    assert len(table) == 3


def test_fields_are_stripped_and_commas_stay_in_tsv_ids(tmp_path: Path) -> None:
    table = read(write(tmp_path / "pairs.txt", " a,1 \t x \n"))
    assert table.anchors == ["a,1"] and table.items == ["x"]


def test_csv_by_extension(tmp_path: Path) -> None:
    table = read(write(tmp_path / "pairs.csv", "a,x,2\nb,y,0.5\n"))
    assert table.anchors == ["a", "b"]
    assert table.items == ["x", "y"]
    assert table.weights == [2.0, 0.5]


def test_csv_quoting_is_honoured(tmp_path: Path) -> None:
    table = read(write(tmp_path / "pairs.csv", '"a,b",x\n'))
    assert table.anchors == ["a,b"] and table.items == ["x"]


def test_explicit_delimiter(tmp_path: Path) -> None:
    path = write(tmp_path / "pairs.tsv", "a;x;3\nb;y;4\n")
    table = read(path, delimiter=";")
    assert table.anchors == ["a", "b"]
    assert table.items == ["x", "y"]
    assert table.weights == [3.0, 4.0]
    # The default delimiter of a .tsv is a tab: one field per line is an error.
    with pytest.raises(ValueError, match="delimiter"):
        read_pairs(path)


def test_header_is_skipped(tmp_path: Path) -> None:
    path = write(tmp_path / "pairs.tsv", "anchor\titem\tweight\na\tx\t1.5\n")
    table = read(path, header=True)
    assert table.anchors == ["a"] and table.items == ["x"] and table.weights == [1.5]


def test_header_line_numbers_count_the_header(tmp_path: Path) -> None:
    path = write(tmp_path / "pairs.tsv", "anchor\titem\na\tx\nb\n")
    with pytest.raises(ValueError, match=r"pairs\.tsv:3:"):
        read_pairs(path, header=True)


def test_weights_column(tmp_path: Path) -> None:
    table = read(write(tmp_path / "w.tsv", "a\tx\t1\na\ty\t0\nb\tx\t2.5e1\n"))
    assert table.weights == [1.0, 0.0, 25.0]
    assert all(isinstance(w, float) for w in table.weights)


def test_blank_lines_are_skipped(tmp_path: Path) -> None:
    path = write(tmp_path / "pairs.tsv", "\na\tx\n\n   \n\t\nb\ty\n\n")
    table = read(path)
    assert table.anchors == ["a", "b"] and table.items == ["x", "y"]


def test_blank_lines_keep_line_numbers(tmp_path: Path) -> None:
    path = write(tmp_path / "pairs.tsv", "a\tx\n\nb\n")
    with pytest.raises(ValueError, match=r"pairs\.tsv:3:"):
        read_pairs(path)


def test_gzip_file(tmp_path: Path) -> None:
    path = tmp_path / "pairs.csv.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("a,x,1\nb,y,2\n")
    table = read(path)  # ".csv" among the suffixes: comma
    assert table.anchors == ["a", "b"] and table.items == ["x", "y"]
    assert table.weights == [1.0, 2.0]
    tsv = tmp_path / "pairs.tsv.gz"
    with gzip.open(tsv, "wt", encoding="utf-8") as handle:
        handle.write("c\tz\n")
    assert read(tsv).anchors == ["c"]


def test_path_like_and_str(tmp_path: Path) -> None:
    path = write(tmp_path / "pairs.tsv", "a\tx\n")
    assert read(str(path)).anchors == read(path).anchors == ["a"]


def test_pairs_are_int32_codes_of_distinct_names(tmp_path: Path) -> None:
    table = read_pairs(write(tmp_path / "w.tsv", "a\tx\t1\nx\ta\t2\na\tx\t0.5\nb\tb\t1\n"))
    assert table.names == ["a", "x", "b"]  # each once, as first seen (the anchor first)
    assert table.anchors.dtype == np.int32 and table.items.dtype == np.int32
    assert table.anchors.tolist() == [0, 1, 0, 2] and table.items.tolist() == [1, 0, 1, 2]
    assert table.weights is not None and table.weights.dtype == np.float64
    assert table.weights.tolist() == [1.0, 2.0, 0.5, 1.0]
    assert read_pairs(write(tmp_path / "p.tsv", "a\tx\n")).weights is None


# ---------------------------------------------------------------- errors
def test_missing_column_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.tsv", "a\tx\nb\tx\nlonely\n")
    with pytest.raises(ValueError) as error:
        read_pairs(path)
    message = str(error.value)
    assert f"{path}:3:" in message
    assert "lonely" in message
    assert "<TAB>" in message and "--data.delimiter" in message


def test_empty_id_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"empty\.tsv:1:"):
        read_pairs(write(tmp_path / "empty.tsv", "a\t \n"))
    with pytest.raises(ValueError, match=r"empty2\.tsv:1:"):
        read_pairs(write(tmp_path / "empty2.tsv", "\tx\n"))


def test_four_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "four.csv", "a,x,1\nb,y,2,3\n")
    with pytest.raises(ValueError) as error:
        read_pairs(path)
    assert f"{path}:2:" in str(error.value)
    assert "optional weight column" in str(error.value)


def test_mixed_two_and_three_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "mixed.tsv", "a\tx\t1\nb\ty\n")
    with pytest.raises(ValueError, match=re.escape(f"{path}:2: 2 columns where earlier lines")):
        read_pairs(path)
    path = write(tmp_path / "mixed2.tsv", "a\tx\nb\ty\t1\n")
    with pytest.raises(ValueError, match="every line a weight or none"):
        read_pairs(path)


def test_empty_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="holds no pairs"):
        read_pairs(write(tmp_path / "empty.tsv", ""))
    with pytest.raises(ValueError, match="holds no pairs"):
        read_pairs(write(tmp_path / "blank.tsv", "\n\n  \n"))


def test_header_only_file(tmp_path: Path) -> None:
    path = write(tmp_path / "header.tsv", "anchor\titem\n")
    with pytest.raises(ValueError, match="only has a header"):
        read_pairs(path, header=True)


def test_non_numeric_weight_hints_at_header(tmp_path: Path) -> None:
    path = write(tmp_path / "named.tsv", "anchor\titem\tweight\na\tx\t1\n")
    with pytest.raises(ValueError) as error:
        read_pairs(path)
    message = str(error.value)
    assert f"{path}:1:" in message
    assert "'weight' is not a number" in message
    assert "--data.header" in message
    # With header=True a bad weight further down has no header hint.
    path = write(tmp_path / "bad.tsv", "anchor\titem\tweight\na\tx\tmany\n")
    with pytest.raises(ValueError) as error:
        read_pairs(path, header=True)
    assert f"{path}:2:" in str(error.value)
    assert "'many' is not a number" in str(error.value)
    assert "--data.header" not in str(error.value)


@pytest.mark.parametrize("weight", ["-1", "-0.5", "nan", "inf", "-inf"])
def test_negative_or_non_finite_weight(tmp_path: Path, weight: str) -> None:
    path = write(tmp_path / "w.tsv", f"a\tx\t1\nb\ty\t{weight}\n")
    with pytest.raises(ValueError) as error:
        read_pairs(path)
    assert f"{path}:2:" in str(error.value)
    assert "finite number >= 0" in str(error.value)


def test_missing_file_lists_builtins(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as error:
        read_pairs(tmp_path / "nope.tsv")
    message = str(error.value)
    assert "nope.tsv" in message
    for name in builtin_relations():
        assert name in message


def test_directory_is_not_a_pair_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_pairs(tmp_path)


# ---------------------------------------------------------------- built-ins
def test_builtin_names() -> None:
    assert set(builtin_relations()) == {
        "lee-doc-words", "gensim-hypernyms", "lee-background-doc-words"}


@pytest.fixture(scope="module")
def lee():
    return read("lee-doc-words")


def test_lee_document_words_documents(lee) -> None:
    documents = set(lee.anchors)
    expected = {f"bg:{i}" for i in range(300)} | {f"lee:{i}" for i in range(50)}
    assert documents == expected
    assert len(documents) == 350
    # Each (document, word) pair appears once.
    assert len(set(zip(lee.anchors, lee.items, strict=True))) == len(lee)


def test_lee_document_words_is_the_builtin(lee) -> None:
    direct = decoded(lee_document_words())
    assert direct.anchors == lee.anchors and direct.items == lee.items
    assert direct.weights == lee.weights


def test_lee_document_words_weights_are_counts(lee) -> None:
    from gensim.parsing.preprocessing import STOPWORDS
    from gensim.test.utils import datapath
    from gensim.utils import simple_preprocess

    assert lee.weights is not None
    assert all(w >= 1 and w == int(w) for w in lee.weights)
    assert max(lee.weights) > 1
    lines = Path(datapath("lee.cor")).read_bytes().decode("latin-1").splitlines()
    for number in (0, 17, 49):
        expected = Counter(w for w in simple_preprocess(lines[number]) if w not in STOPWORDS)
        got = {
            item: weight
            for anchor, item, weight in zip(lee.anchors, lee.items, lee.weights, strict=True)
            if anchor == f"lee:{number}"
        }
        assert got == {word: float(count) for word, count in expected.items()}


def test_lee_document_words_has_no_stop_words(lee) -> None:
    from gensim.parsing.preprocessing import STOPWORDS

    items = set(lee.items)
    for word in ("the", "a", "and", "of", "is"):
        assert word not in items
    assert not items & set(STOPWORDS)
    assert all(item == item.lower() for item in items)


def test_gensim_hypernyms_reads_gensims_file() -> None:
    from gensim.test.utils import datapath

    with open(datapath("poincare_hypernyms_large.tsv"), encoding="utf-8", newline="") as handle:
        rows = [row for row in csv.reader(handle, delimiter="\t") if row]
    table = read("gensim-hypernyms")
    assert table.weights is None
    assert list(zip(table.anchors, table.items, strict=True)) == [(a, i) for a, i in rows]
    assert ("kangaroo.n.01", "marsupial.n.01") in set(zip(table.anchors, table.items, strict=True))
    assert len(table) > 90


def test_quotes_are_literal_in_tab_separated_files(tmp_path: Path) -> None:
    path = tmp_path / "quoted.tsv"
    path.write_text('a\t"b\nc\td\ne\tf"\n', encoding="utf-8")
    table = read(path)
    assert list(zip(table.anchors, table.items, strict=True)) == [
        ("a", '"b'), ("c", "d"), ("e", 'f"')
    ]


def test_csv_quoting_and_upper_case_extension(tmp_path: Path) -> None:
    path = tmp_path / "quoted.CSV"
    path.write_text('"Smith, J.",paper1\n', encoding="utf-8")
    table = read(path)
    assert (table.anchors, table.items) == (["Smith, J."], ["paper1"])
