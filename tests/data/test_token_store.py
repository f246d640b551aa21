"""The token store: streaming reads, ids equal to an in-memory reference, the cache, damage."""

from __future__ import annotations

import gzip
import os
import pickle
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader

import nslightning.data.block_workers as block_workers
import nslightning.data.corpus as corpus_files
from nslightning.data import (
    LanguageModelDataModule,
    SkipGramDataModule,
    Vocabulary,
    keep_probabilities,
    read_sentences,
    skipgram_store,
)
from nslightning.data.language_model_text import EOS, UNK, split_assignment
from nslightning.data.rank_shards import RankOrder
from nslightning.data.store_cache import stores_dir
from nslightning.data.text_blocks import LineNumbers, read_blocks, split_block
from nslightning.data.token_counts import TokenCounter
from nslightning.data.token_store import HEADER_BYTES, TokenStore
from nslightning.samplers import UnigramSampler
from nslightning.tasks import SkipGramTask


def messy_text(seed: int, lines: int = 120) -> str:
    """Empty and blank lines, tabs, CRLF, non-ASCII, a line of 300 tokens, no final newline."""
    rng = random.Random(seed)
    words = ["the", "cat", "dog", "naïve", "café", "x", "y", "zèbre", "a" * 30, "b", "c", "d"]
    out = []
    for number in range(lines):
        kind = rng.random()
        if kind < 0.05:
            out.append(f"unique{number} once{number}")  # no token kept at min_count 2
        elif kind < 0.1:
            out.append("")
        elif kind < 0.15:
            out.append(" \t ")
        else:
            length = 300 if number == 7 else rng.randint(1, 12)
            sep = rng.choice([" ", "  ", "\t", " \t"])
            out.append(sep.join(rng.choice(words) for _ in range(length)) + rng.choice(["", "\r"]))
    return "\n".join(out)


def reference_encoding(
    sentences: list[list[str]], min_count: int
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The in-memory encoding the store replaces: vocabulary, ids, sentence of each id."""
    counts = Counter(token for sentence in sentences for token in sentence)
    vocabulary = Vocabulary.from_counts(dict(counts), min_count=min_count)
    ids, sentence_ids = [], []
    for number, sentence in enumerate(sentences):
        for token in sentence:
            if token in vocabulary:
                ids.append(vocabulary[token])
                sentence_ids.append(number)
    return vocabulary.tokens, np.asarray(ids), np.asarray(sentence_ids)


@pytest.mark.parametrize("block_bytes", [5, 16, 64, 1 << 22])
def test_blocks_give_the_lines_of_read_sentences(tmp_path: Path, block_bytes: int) -> None:
    files = []
    for seed in range(3):
        files.append(tmp_path / f"{seed}.txt")
        files[-1].write_text(messy_text(seed), encoding="utf-8")
    expected = [s for f in files for s in read_sentences(f)]
    lines: dict[int, list[str]] = {}
    closed: list[int] = []
    numbers = LineNumbers()
    for block in read_blocks(files, block_bytes):
        tokens, lengths = split_block(block.text)
        assert len(tokens) == int(lengths.sum())
        numbered, _, ends = numbers.number(lengths, block.continues, block.is_open)
        for token, line in zip(tokens, np.repeat(numbered, lengths).tolist(), strict=True):
            lines.setdefault(line, []).append(token)
        closed += numbered[ends].tolist()
        assert all(len(lines[line]) > 0 for line in closed)
    assert [lines[i] for i in range(len(lines))] == expected
    assert closed == list(range(len(expected)))  # every line closed once, in order


@pytest.mark.parametrize("workers", [1, 2])
def test_an_open_last_line_is_closed_at_the_end_of_its_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    monkeypatch.setattr(corpus_files, "BLOCK_BYTES", 4)
    monkeypatch.setattr(block_workers, "PARALLEL_BYTES", 0)
    (tmp_path / "a.txt").write_text("a b c d e ", encoding="utf-8")  # no line end
    (tmp_path / "b.txt").write_text("f g\n", encoding="utf-8")
    data = LanguageModelDataModule(str(tmp_path / "a.txt"), str(tmp_path / "b.txt"),
                                   str(tmp_path / "b.txt"), min_count=1, store_workers=workers)
    eos = data.vocabulary[EOS]
    assert data.ids("train").tolist() == [*(data.vocabulary[t] for t in "abcde"), eos]
    assert data.ids("val").tolist() == [data.vocabulary[UNK], data.vocabulary[UNK], eos]


@pytest.mark.parametrize(("block_bytes", "workers"), [(16, 1), (16, 2), (1 << 22, 1)])
def test_skipgram_store_equals_the_in_memory_encoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block_bytes: int, workers: int
) -> None:
    monkeypatch.setattr(corpus_files, "BLOCK_BYTES", block_bytes)
    monkeypatch.setattr(block_workers, "PARALLEL_BYTES", 0)
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "a.txt").write_text(messy_text(1), encoding="utf-8")
    with gzip.open(tmp_path / "corpus" / "b.txt.gz", "wt", encoding="utf-8") as handle:
        handle.write(messy_text(2))
    store = skipgram_store(tmp_path / "corpus", min_count=2, workers=workers)
    assert store.info["workers"] == workers
    tokens, ids, sentence_ids = reference_encoding(list(read_sentences(tmp_path / "corpus")), 2)
    assert store.vocabulary.tokens == tokens
    assert store.tokens.dtype == np.int32 and np.array_equal(store.tokens, ids)
    for size in (1, 7, 500):
        for start in range(0, len(store), size):
            chunk, sentences = store.chunk(start, start + size)
            assert np.array_equal(chunk.numpy(), ids[start : start + size])
            assert np.array_equal(sentences.numpy(), sentence_ids[start : start + size])


def test_the_bundled_sample_encodes_as_in_memory() -> None:
    store = skipgram_store("enwiki-sample", min_count=5)
    tokens, ids, sentence_ids = reference_encoding(list(read_sentences("enwiki-sample")), 5)
    assert store.vocabulary.tokens == tokens
    assert np.array_equal(store.tokens, ids)
    assert np.array_equal(store.chunk(0, len(store))[1].numpy(), sentence_ids)


def reference_lm_sections(
    sentences: list[list[str]], vocabulary: Vocabulary, parts: np.ndarray
) -> list[list[int]]:
    sections: list[list[int]] = [[], [], []]
    for sentence, part in zip(sentences, parts, strict=True):
        sections[part] += [vocabulary.index.get(t, vocabulary[UNK]) for t in sentence]
        sections[part].append(vocabulary[EOS])
    return sections


@pytest.mark.parametrize(("block_bytes", "workers"), [(16, 1), (16, 2), (1 << 22, 1)])
def test_language_model_store_splits_and_encodes_as_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block_bytes: int, workers: int
) -> None:
    monkeypatch.setattr(corpus_files, "BLOCK_BYTES", block_bytes)
    monkeypatch.setattr(block_workers, "PARALLEL_BYTES", 0)
    path = tmp_path / "text.txt"
    path.write_text(messy_text(4, lines=300), encoding="utf-8")
    sentences = list(read_sentences(path))
    data = LanguageModelDataModule(str(path), val_fraction=0.2, test_fraction=0.1, split_seed=3,
                                   min_count=2, store_workers=workers)
    assert data.store.info["workers"] == workers
    parts = split_assignment(np.asarray([len(s) for s in sentences]), 0.2, 0.1, 3)
    train_counts = Counter(t for s, p in zip(sentences, parts, strict=True) if p == 0 for t in s)
    vocabulary = data.vocabulary
    assert vocabulary.counts[vocabulary[EOS]] == int((parts == 0).sum())
    kept = {t for t, c in train_counts.items() if c >= 2}
    assert set(vocabulary.tokens) == kept | {UNK, EOS}
    expected = reference_lm_sections(sentences, vocabulary, parts)
    for name, ids in zip(("train", "val", "test"), expected, strict=True):
        assert data.ids(name).tolist() == ids  # type: ignore[arg-type]


def test_a_second_run_opens_the_store_and_a_changed_file_rebuilds_it(
    topic_corpus_file: Path,
) -> None:
    first = skipgram_store(topic_corpus_file, min_count=1)
    inode = first.path.stat().st_ino
    again = skipgram_store(topic_corpus_file, min_count=1)
    assert again.path == first.path and again.path.stat().st_ino == inode
    assert skipgram_store(topic_corpus_file, min_count=2).path != first.path
    with open(topic_corpus_file, "a", encoding="utf-8") as handle:
        handle.write("newword newword\n")
    changed = skipgram_store(topic_corpus_file, min_count=1)
    assert changed.path != first.path
    assert "newword" in changed.vocabulary and len(changed) == len(first) + 2


@pytest.mark.parametrize("damage", ["truncate", "flip", "magic", "description"])
def test_a_damaged_store_is_rebuilt_with_a_warning(topic_corpus_file: Path, damage: str) -> None:
    store = skipgram_store(topic_corpus_file, min_count=1)
    expected = np.array(store.tokens)
    data = bytearray(store.path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":
        data[HEADER_BYTES + 100] ^= 0xFF
    elif damage == "magic":
        data[:8] = b"garbage!"
    else:
        data[40] ^= 0x01  # inside the header's JSON
    path = store.path
    damaged = path.with_name("damaged")
    damaged.write_bytes(bytes(data))
    os.replace(damaged, path)  # a new file: the open store keeps its own map
    with pytest.warns(UserWarning, match="is damaged .*rebuilding"):
        rebuilt = skipgram_store(topic_corpus_file, min_count=1)
    assert np.array_equal(rebuilt.tokens, expected)
    assert TokenStore.open(path).info["tokens_read"] > 0


def test_counting_prunes_the_rarest_as_gensim_does() -> None:
    rng = np.random.default_rng(0)
    blocks = [[f"w{int(i)}" for i in rng.zipf(1.3, size=500) if i < 10_000] for _ in range(20)]
    counter = TokenCounter(limit=150)
    reference: dict[str, int] = {}
    threshold = 2
    for block in blocks:
        counter.update(block)
        for token in block:
            reference[token] = reference.get(token, 0) + 1
        while len(reference) > 150:
            reference = {t: c for t, c in reference.items() if c >= threshold}
            threshold += 1
    assert dict(counter.counts) == reference and counter.threshold == threshold
    exact = Counter(t for block in blocks for t in block)
    assert all(exact[t] >= c for t, c in reference.items())
    assert counter.pruned_tokens == exact.total() - sum(reference.values())
    with pytest.warns(UserWarning, match=r"count_limit=150 .*pruned"):
        counter.warn_if_pruned("corpus")


def test_empty_and_out_of_vocabulary_corpora_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_text("\n  \n", encoding="utf-8")
    with pytest.raises(ValueError, match="the corpus is empty"):
        skipgram_store(tmp_path / "empty.txt")
    Vocabulary(["cat"], [1]).save(tmp_path / "v.tsv")
    (tmp_path / "dogs.txt").write_text("dog dog\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no corpus token is in the vocabulary"):
        skipgram_store(tmp_path / "dogs.txt", vocabulary=tmp_path / "v.tsv")
    with pytest.raises(ValueError, match="leaves an empty vocabulary"):
        skipgram_store(tmp_path / "dogs.txt", min_count=3)
    assert not list(stores_dir().glob(".*.tmp"))


def test_stores_live_under_nslightning_cache(topic_corpus_file: Path) -> None:
    store = skipgram_store(topic_corpus_file, min_count=1)
    assert store.path.parent == Path(os.environ["NSLIGHTNING_CACHE"]) / "token-stores"


class InMemoryChunks(SkipGramDataModule):
    """The skip-gram DataModule fed, as before the store, by chunks of in-memory id tensors."""

    def __init__(self, ids: np.ndarray, sentence_ids: np.ndarray, vocabulary: Vocabulary,
                 **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.memory = (torch.from_numpy(ids.astype(np.int32)),
                       torch.from_numpy(sentence_ids.astype(np.int32)))
        self._vocabulary = vocabulary

    @property
    def vocabulary(self) -> Vocabulary:
        return self._vocabulary

    def setup(self, stage: str) -> None:
        if self.sample is not None:
            self._keep_prob = keep_probabilities(self.counts, self.sample)

    def train_dataloader(self) -> DataLoader[dict[str, Tensor]]:
        tokens, sentences = self.memory
        chunks = [{"tokens": tokens[i : i + self.batch_size],
                   "sentence_ids": sentences[i : i + self.batch_size]}
                  for i in range(0, len(tokens), self.batch_size)]
        order = RankOrder(len(chunks), self.shuffle, self.seed)  # the DataModule's chunk order
        return DataLoader(chunks, batch_size=None, sampler=order)  # type: ignore[arg-type]


def train_vectors(data: SkipGramDataModule) -> np.ndarray:
    pl.seed_everything(0, verbose=False)
    task = SkipGramTask(data.vocab_size, dim=16, num_negatives=3, sampler=UnigramSampler(seed=0),
                        engine="fused", threads=1, diagnostics_every=0)
    trainer = pl.Trainer(max_steps=6, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         accelerator="cpu")
    trainer.fit(task, data)
    return task.embeddings.input.weight.detach().numpy().copy()


def test_vectors_trained_from_the_store_equal_those_from_memory() -> None:
    settings = {"corpus": "enwiki-sample", "min_count": 5, "batch_size": 8192, "seed": 0}
    tokens, ids, sentence_ids = reference_encoding(list(read_sentences("enwiki-sample")), 5)
    counts = Counter(t for s in read_sentences("enwiki-sample") for t in s)
    vocabulary = Vocabulary(tokens, [counts[t] for t in tokens])
    from_store = train_vectors(SkipGramDataModule(**settings))  # type: ignore[arg-type]
    from_memory = train_vectors(InMemoryChunks(ids, sentence_ids, vocabulary, **settings))
    assert np.array_equal(from_store, from_memory)
    assert not np.array_equal(from_store, train_vectors(
        InMemoryChunks(ids[::-1].copy(), sentence_ids, vocabulary, **settings)))


def test_a_store_pickles_as_its_path_and_maps_the_file_again(topic_corpus_file: Path) -> None:
    store = skipgram_store(topic_corpus_file, min_count=1)
    payload = pickle.dumps(store)
    assert len(payload) < 1000  # not the ids
    again = pickle.loads(payload)
    assert isinstance(again.tokens, np.memmap) and np.array_equal(again.tokens, store.tokens)
    assert again.vocabulary == store.vocabulary


def test_pruned_counts_go_to_unk_so_language_model_counts_add_up(tmp_path: Path) -> None:
    path = tmp_path / "text.txt"
    path.write_text(messy_text(5, lines=300), encoding="utf-8")
    with pytest.warns(UserWarning, match="count_limit=6"):
        data = LanguageModelDataModule(str(path), min_count=1, count_limit=6)
        data.setup("fit")
    assert int(data.counts.sum()) == data.ids("train").size


def test_worker_counts_are_checked_and_small_corpora_stay_in_process(
    topic_corpus_file: Path,
) -> None:
    with pytest.raises(ValueError, match="store_workers must be >= 1"):
        skipgram_store(topic_corpus_file, workers=0)
    assert block_workers.worker_count(4, [topic_corpus_file]) == 1  # under PARALLEL_BYTES


def test_warnings_of_the_build_are_repeated_by_runs_that_open_the_store(tmp_path: Path) -> None:
    (tmp_path / "latin1.txt").write_bytes(b"caf\xe9 ok\nfine line\n" * 3)
    message = r"3 invalid UTF-8 byte sequence\(s\) on 3 line\(s\)"
    with pytest.warns(UserWarning, match=message):
        built = skipgram_store(tmp_path / "latin1.txt", min_count=1)
    with pytest.warns(UserWarning, match=message + ".*when its token store was built"):
        opened = skipgram_store(tmp_path / "latin1.txt", min_count=1)
    assert opened.path == built.path
