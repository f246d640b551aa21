from __future__ import annotations

from pathlib import Path

import pytest

from nslightning.data import Vocabulary
from tests.corpora import make_topic_corpus


def test_order_is_count_then_token() -> None:
    vocab = Vocabulary.build([["b", "a", "c", "b", "a", "d"]], min_count=1)
    assert vocab.tokens == ["a", "b", "c", "d"]
    assert vocab.counts.tolist() == [2, 2, 1, 1]
    assert vocab["b"] == 1 and "z" not in vocab and len(vocab) == 4


def test_min_count_and_max_size() -> None:
    sentences = [["x"] * 5 + ["y"] * 3 + ["z"]]
    assert Vocabulary.build(sentences, min_count=3).tokens == ["x", "y"]
    assert Vocabulary.build(sentences, min_count=1, max_size=1).tokens == ["x"]


def test_empty_corpus_and_min_count_that_empties() -> None:
    with pytest.raises(ValueError, match="corpus is empty"):
        Vocabulary.build([], min_count=1)
    with pytest.raises(ValueError, match=r"occurs 2 time.*lower min_count to 2"):
        Vocabulary.build([["a", "a", "b"]], min_count=5)
    with pytest.raises(ValueError, match="min_count must be >= 1"):
        Vocabulary.build([["a"]], min_count=0)


def test_save_load_round_trip(tmp_path: Path) -> None:
    vocab = Vocabulary.build(make_topic_corpus(50), min_count=1)
    vocab.save(tmp_path / "vocab.tsv")
    assert Vocabulary.load(tmp_path / "vocab.tsv") == vocab
    (tmp_path / "bad.tsv").write_text("no tab here\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.tsv:1"):
        Vocabulary.load(tmp_path / "bad.tsv")
    with pytest.raises(OSError, match="cannot read vocabulary file"):
        Vocabulary.load(tmp_path / "missing.tsv")
