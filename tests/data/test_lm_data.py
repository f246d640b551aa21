"""Language-model text: document splits, the vocabulary with specials, TBPTT token streams."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from nslightning.data import LanguageModelDataModule, TokenStreams, TokenWindow, Vocabulary
from nslightning.data.language_model_text import (
    EOS,
    UNK,
    split_assignment,
    vocabulary_from_counts,
)


def split_lines(lines, val_fraction, test_fraction, seed=0):
    """The lines of each split, in corpus order, as the store lays them out."""
    lengths = np.asarray([len(line) for line in lines])
    parts = split_assignment(lengths, val_fraction, test_fraction, seed)
    return tuple([line for line, part in zip(lines, parts, strict=True) if part == k]
                 for k in range(3))


def build_vocabulary(lines, min_count=1, max_size=None):
    counts = Counter(token for line in lines for token in line)
    return vocabulary_from_counts(counts, len(lines), min_count, max_size)


def documents(count: int = 40) -> list[list[str]]:
    return [[f"w{i}"] * (1 + (i * 7) % 13) + [f"d{i}"] for i in range(count)]


def test_split_is_deterministic_whole_lines_and_a_partition():
    lines = documents()
    first = split_lines(lines, 0.1, 0.2, seed=0)
    assert split_lines(lines, 0.1, 0.2, seed=0) == first
    assert split_lines(lines, 0.1, 0.2, seed=1) != first
    train, val, test = first
    assert train and val and test
    keys = [tuple(line) for part in first for line in part]
    assert sorted(keys) == sorted(tuple(line) for line in lines)  # every line once
    for part in first:  # corpus order within each split
        positions = [lines.index(line) for line in part]
        assert positions == sorted(positions)
    total = sum(len(line) + 1 for line in lines)
    longest = max(len(line) + 1 for line in lines)
    for part, fraction in ((val, 0.1), (test, 0.2)):
        share = sum(len(line) + 1 for line in part)
        assert fraction * total <= share + longest  # reaches its share, give or take a line
        assert share < fraction * total + longest


@pytest.mark.parametrize(
    ("val", "test", "message"),
    [(0.0, 0.1, "val_fraction"), (0.1, 1.0, "test_fraction"), (0.5, 0.5, "nothing to train")],
)
def test_bad_fractions_are_clear_errors(val, test, message):
    with pytest.raises(ValueError, match=message):
        split_lines(documents(), val, test)


def test_too_few_lines_to_split_is_a_clear_error():
    with pytest.raises(ValueError, match="at least 3"):
        split_lines([["a", "b"], ["c"]], 0.1, 0.1)
    train, val, test = split_lines([["a"], ["b"], ["c"]], 0.1, 0.1)
    assert len(train) == len(val) == len(test) == 1


def test_vocabulary_counts_unk_and_eos_and_sorts_by_count():
    lines = [["a", "a", "b", "<unk>"], ["a", "c", "b"], ["d"]]
    vocabulary = build_vocabulary(lines, min_count=2)
    counts = dict(zip(vocabulary.tokens, vocabulary.counts.tolist(), strict=True))
    assert counts == {"a": 3, EOS: 3, "b": 2, UNK: 3}  # <unk>: the literal one, c and d
    assert vocabulary.tokens == [EOS, UNK, "a", "b"]  # by count, then by token ("<" < "a")
    assert vocabulary.total_count == sum(len(line) + 1 for line in lines)


def test_max_size_counts_the_specials_and_unk_absorbs_the_rest():
    lines = [["a"] * 5 + ["b"] * 4 + ["c"] * 3]
    vocabulary = build_vocabulary(lines, min_count=1, max_size=3)
    assert set(vocabulary.tokens) == {"a", UNK, EOS}
    assert vocabulary.counts[vocabulary[UNK]] == 7
    with pytest.raises(ValueError, match="max_vocab_size"):
        build_vocabulary(lines, max_size=2)
    with pytest.raises(ValueError, match="min_count"):
        build_vocabulary(lines, min_count=0)
    with pytest.raises(ValueError, match="empty"):
        build_vocabulary([])


def test_encoding_ends_lines_with_eos_and_maps_unknown_words_to_unk(tmp_path):
    train = write(tmp_path / "train.txt", ["a b", "a"])
    val = write(tmp_path / "val.txt", ["a zzz", "", "b"])
    data = LanguageModelDataModule(train, val, val, min_count=1)
    vocabulary = data.vocabulary
    expected = [vocabulary[t] for t in ("a", UNK, EOS, "b", EOS)]
    assert data.ids("val").tolist() == expected and data.ids("val").dtype == np.int32
    Vocabulary(["a"], [1]).save(tmp_path / "v.tsv")
    with pytest.raises(ValueError, match="lacks"):
        LanguageModelDataModule(
            train, val, val, vocabulary_path=str(tmp_path / "v.tsv")
        ).setup("fit")


def test_windows_rebuild_every_stream_and_shift_targets_by_one():
    ids = torch.arange(103)
    streams = TokenStreams(ids, batch_size=4, bptt=7)
    windows = list(streams)
    assert len(windows) == len(streams) == 4  # streams of 25 ids: 24 targets in windows of 7
    assert windows[-1].inputs.shape == (4, 3)
    rebuilt = torch.cat([w.inputs for w in windows], dim=1)
    rebuilt = torch.cat([rebuilt, windows[-1].targets[:, -1:]], dim=1)
    assert torch.equal(rebuilt, ids[:100].view(4, 25))
    for window in windows:
        assert isinstance(window, TokenWindow)
        assert window.num_tokens == window.targets.numel()
        start = int(window.inputs[0, 0]) + 1
        assert torch.equal(window.targets[0], torch.arange(start, start + window.targets.shape[1]))


def test_ranks_serve_disjoint_streams_of_the_whole():
    ids = torch.arange(200)
    whole = torch.cat([w.inputs for w in TokenStreams(ids, batch_size=6, bptt=5)], dim=1)
    parts = [
        torch.cat([w.inputs for w in TokenStreams(ids, 3, 5, rank=r, world_size=2)], dim=1)
        for r in range(2)
    ]
    assert torch.equal(torch.cat(parts), whole)


def test_short_texts_are_clear_errors():
    with pytest.raises(ValueError, match="shorter than one bptt window"):
        TokenStreams(torch.arange(5), batch_size=1, bptt=5, name="test")
    with pytest.raises(ValueError, match="lower the batch size or bptt"):
        TokenStreams(torch.arange(50), batch_size=10, bptt=5)


def write(path: Path, lines: list[str]) -> str:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def test_three_files_build_the_vocabulary_on_training_text_only(tmp_path):
    train = write(tmp_path / "train.txt", ["the cat sat on the mat"] * 20)
    val = write(tmp_path / "val.txt", ["the dog sat"] * 10)
    test = write(tmp_path / "test.txt", ["a cat ran"] * 10)
    data = LanguageModelDataModule(train, val, test, min_count=1, batch_size=2, bptt=4,
                                   eval_batch_size=2)
    assert "dog" not in data.vocabulary and "cat" in data.vocabulary
    assert (data.ids("val") == data.unk_id).sum() == 10  # every "dog"
    assert data.counts.sum() == data.ids("train").size
    window = next(iter(data.train_dataloader()))
    assert window.inputs.shape == (2, 4)
    saved = tmp_path / "vocabulary.tsv"
    data.vocabulary.save(saved)
    again = LanguageModelDataModule(train, val, test, vocabulary_path=str(saved), min_count=9)
    assert np.array_equal(again.ids("test"), data.ids("test"))


def test_one_of_two_evaluation_files_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="both"):
        LanguageModelDataModule("x", val_corpus="y")


def test_an_empty_corpus_is_a_clear_error(tmp_path):
    empty = write(tmp_path / "empty.txt", ["", "  "])
    with pytest.raises(ValueError, match="holds no tokens"):
        LanguageModelDataModule(empty).setup("fit")


def test_the_bundled_wikipedia_sample_splits_by_article():
    data = LanguageModelDataModule(min_count=3)
    sizes = {split: data.ids(split).size for split in ("train", "val", "test")}
    total = sum(sizes.values())
    assert total > 400_000
    assert 0.1 <= sizes["val"] / total < 0.2 and 0.1 <= sizes["test"] / total < 0.2
    assert data.vocabulary.tokens[0] in ("the", EOS)
    counts = data.counts
    assert (counts[1:] <= counts[:-1]).all()  # sorted for the log-uniform sampler
