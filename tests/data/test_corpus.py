from __future__ import annotations

import bz2
import gzip
from pathlib import Path

import pytest

from nslightning.data import builtin_corpora, read_sentences, resolve_paths


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_file_folder_glob_and_compressed(tmp_path: Path) -> None:
    write(tmp_path / "a.txt", "one two\n\nthree\n")
    with gzip.open(tmp_path / "b.txt.gz", "wt") as f:
        f.write("four five\n")
    with bz2.open(tmp_path / "c.txt.bz2", "wt") as f:
        f.write("six\n")
    write(tmp_path / ".hidden", "never read\n")
    assert list(read_sentences(tmp_path / "a.txt")) == [["one", "two"], ["three"]]
    assert list(read_sentences(tmp_path / "b.txt.gz")) == [["four", "five"]]
    assert list(read_sentences(tmp_path / "c.txt.bz2")) == [["six"]]
    folder = list(read_sentences(tmp_path))
    assert folder == [["one", "two"], ["three"], ["four", "five"], ["six"]]
    assert [p.name for p in resolve_paths(str(tmp_path / "*.txt*"))] == [
        "a.txt", "b.txt.gz", "c.txt.bz2",
    ]


def test_missing_path_names_the_problem(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        list(read_sentences(tmp_path / "nope.txt"))
    with pytest.raises(FileNotFoundError, match="matches no files"):
        resolve_paths(str(tmp_path / "*.nothing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="contains no files"):
        resolve_paths(tmp_path / "empty")


def test_corrupt_compressed_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "bad.gz").write_bytes(b"this is not gzip data")
    with pytest.raises(OSError, match=r"cannot read corpus file .*bad\.gz"):
        list(read_sentences(tmp_path / "bad.gz"))


def test_invalid_utf8_is_replaced_with_a_counted_warning(tmp_path: Path) -> None:
    (tmp_path / "latin1.txt").write_bytes(b"caf\xe9 ok\nfine line\nna\xefve \xff\n")
    with pytest.warns(UserWarning, match=r"3 invalid UTF-8 byte sequence\(s\) on 2 line\(s\)"):
        sentences = list(read_sentences(tmp_path / "latin1.txt"))
    assert sentences[0] == ["caf\ufffd", "ok"]
    assert sentences[1] == ["fine", "line"]


def test_builtin_wikipedia_sample_is_cached() -> None:
    assert "enwiki-sample" in builtin_corpora()
    first = resolve_paths("enwiki-sample")[0]
    assert first.exists()
    assert resolve_paths("enwiki-sample")[0] == first
    sentences = list(read_sentences("enwiki-sample"))
    assert len(sentences) == 106
    assert 440_000 < sum(map(len, sentences)) < 470_000
    assert sentences[0][:3] == ["anarchism", "is", "political"]


@pytest.mark.parametrize("block_bytes", [3, 7, 64, 1 << 22])
def test_lines_are_the_same_whatever_the_block_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block_bytes: int
) -> None:
    import nslightning.data.corpus as corpus

    monkeypatch.setattr(corpus, "BLOCK_BYTES", block_bytes)
    text = "one two\r\n\n  three\tfour  \n" + "long " * 50 + "\nzèbre café\nno end  "
    path = write(tmp_path / "text.txt", text)
    expected = [line.rstrip("\r") for line in text.split("\n")]
    assert list(corpus.read_lines(path)) == expected
    (tmp_path / "ends.txt").write_text("a\nb\n", encoding="utf-8")
    assert list(corpus.read_lines(tmp_path / "ends.txt")) == ["a", "b"]
