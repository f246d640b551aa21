"""read_feature_bags: side files of per-entity features, their errors, and the built-ins."""

from __future__ import annotations

import bz2
import gzip
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from nslightning.data.feature_bags import FeatureBags, builtin_feature_bags, read_feature_bags
from nslightning.data.pair_files import builtin_relations, lee_document_words, read_pairs


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def bags_of(bags: FeatureBags) -> dict[str, list[str]]:
    return {name: bags.bag(row) for row, name in enumerate(bags.names)}


# ---------------------------------------------------------------- the CSR layout
def test_csr_holds_every_occurrence_in_file_order(tmp_path: Path) -> None:
    bags = read_feature_bags(write(tmp_path / "side.tsv", "d1\tstorm rain storm\n\nd2\t vote\n"
                                                           "d3\train  wind\tvote\n"))
    assert bags.names == ["d1", "d2", "d3"]
    assert bags.features == ["storm", "rain", "vote", "wind"]  # first appearance
    assert bags.indices.dtype == np.int64 and bags.offsets.dtype == np.int64
    assert bags.indices.tolist() == [0, 1, 0, 2, 1, 3, 2]
    assert bags.offsets.tolist() == [0, 3, 4, 7]
    assert bags_of(bags) == {"d1": ["storm", "rain", "storm"], "d2": ["vote"],
                             "d3": ["rain", "wind", "vote"]}
    assert len(bags) == 3


def test_padded_bags(tmp_path: Path) -> None:
    bags = read_feature_bags(write(tmp_path / "side.tsv", "a\tx y x\nb\tz\nc\ty z\n"))
    assert bags.padded(pad=9).tolist() == [[0, 1, 0], [2, 9, 9], [1, 2, 9]]


def test_rows_by_name(tmp_path: Path) -> None:
    bags = read_feature_bags(write(tmp_path / "side.tsv", "a\tx\nb\ty\n"))
    assert bags.rows(["b", "zz", "a"]) == ([1, -1, 0], ["zz"])


def test_other_delimiter_and_compressed_files(tmp_path: Path) -> None:
    text = "a,x y\nb,y\n"
    with gzip.open(tmp_path / "side.csv.gz", "wt", encoding="utf-8") as handle:
        handle.write(text)
    with bz2.open(tmp_path / "side.csv.bz2", "wt", encoding="utf-8") as handle:
        handle.write(text)
    for name in ("side.csv.gz", "side.csv.bz2"):
        bags = read_feature_bags(tmp_path / name, delimiter=",")
        assert bags_of(bags) == {"a": ["x", "y"], "b": ["y"]}


# ---------------------------------------------------------------- errors
def test_missing_file_names_the_path_and_the_builtins(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.tsv.*not found.*lee-doc-bags"):
        read_feature_bags(tmp_path / "nope.tsv")


@pytest.mark.parametrize(
    ("text", "line", "pattern"),
    [
        ("a\tx\nb x y\n", 2, r"expected 'id<TAB>feature feature \.\.\.', got 'b x y' without "
                            r"<TAB>; separate the id from its features"),
        ("a\tx\n\n \ty\n", 3, r"the id is empty; start the line with the entity's id"),
        ("a\tx\nb\t  \n", 2, r"id 'b' has no features; give it at least one feature"),
        ("a\tx\nb\ty\na\tz\n", 3, r"id 'a' already has a line \(.*side\.tsv:1\); give each id "
                                  r"one line"),
    ],
    ids=["no-tab", "empty-id", "empty-bag", "duplicate-id"],
)
def test_bad_lines_name_the_file_the_line_and_the_fix(
    tmp_path: Path, text: str, line: int, pattern: str
) -> None:
    path = write(tmp_path / "side.tsv", text)
    with pytest.raises(ValueError, match=re.escape(f"{path}:{line}: ") + pattern):
        read_feature_bags(path)


@pytest.mark.parametrize("text", ["", "\n  \n"], ids=["empty", "blank-lines"])
def test_a_file_without_entities(tmp_path: Path, text: str) -> None:
    path = write(tmp_path / "side.tsv", text)
    with pytest.raises(ValueError, match=re.escape(f"side file {path} holds no entities; give "
                                                   "one line 'id<TAB>feature feature ...'")):
        read_feature_bags(path)


def test_an_empty_delimiter(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="delimiter must be a non-empty string"):
        read_feature_bags(write(tmp_path / "side.tsv", "a\tx\n"), delimiter="")


# ---------------------------------------------------------------- built-ins
@pytest.fixture(scope="module")
def lee_bags() -> FeatureBags:
    return read_feature_bags("lee-doc-bags")


def test_builtin_names() -> None:
    assert builtin_feature_bags() == ("lee-doc-bags",)
    assert "lee-background-doc-words" in builtin_relations()


def test_lee_doc_bags_hold_every_lee_document(lee_bags: FeatureBags) -> None:
    assert len(lee_bags) == 350
    assert lee_bags.names == [f"bg:{i}" for i in range(300)] + [f"lee:{i}" for i in range(50)]
    assert lee_bags.source == "lee-doc-bags"


def test_lee_doc_bags_count_the_words_of_lee_doc_words(lee_bags: FeatureBags) -> None:
    """Same tokenisation as the relation: each bag's word counts are its pair weights."""
    table = lee_document_words()
    assert table.weights is not None
    expected: dict[str, Counter[str]] = {}
    for anchor, item, weight in zip(table.anchors, table.items, table.weights, strict=True):
        expected.setdefault(table.names[anchor], Counter())[table.names[item]] = int(weight)
    got = {name: Counter(words) for name, words in bags_of(lee_bags).items()}
    assert got == expected
    assert max(max(bag.values()) for bag in got.values()) > 1  # repeats are kept


def test_lee_background_doc_words_holds_out_the_judged_documents() -> None:
    background = read_pairs("lee-background-doc-words")
    everything = lee_document_words()
    anchors = {background.names[i] for i in background.anchors}
    assert anchors == {f"bg:{i}" for i in range(300)}
    assert not any(name.startswith("lee:") for name in background.names)
    # the same pairs as lee-doc-words for those documents, in the same order
    pairs = len(background)
    assert background.weights is not None and everything.weights is not None
    assert np.array_equal(background.anchors, everything.anchors[:pairs])
    assert np.array_equal(background.items, everything.items[:pairs])
    assert np.array_equal(background.weights, everything.weights[:pairs])
    assert background.names == everything.names[: len(background.names)]
    assert everything.names[everything.anchors[pairs]] == "lee:0"
