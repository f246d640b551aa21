from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nslightning.data import SkipGramBatch, SkipGramDataModule, Vocabulary
from nslightning.samplers import UnigramSampler


def test_chunks_become_windows(topic_corpus_file: Path) -> None:
    data = SkipGramDataModule(
        str(topic_corpus_file), min_count=1, batch_size=500, window=3, shuffle=False
    )
    data.setup("fit")
    assert data.vocab_size == 32
    assert data.counts.sum() == data.num_tokens
    loader = data.train_dataloader()
    chunks = list(loader)
    assert len(chunks) == -(-data.num_tokens // 500)
    assert sum(c["tokens"].numel() for c in chunks) == data.num_tokens
    batch = data.on_after_batch_transfer(chunks[0], 0)
    assert isinstance(batch, SkipGramBatch)
    assert batch.contexts.shape[1] == 6 and batch.num_tokens == 500
    assert batch.mask.any()


def test_saved_vocabulary_fixes_the_ids(topic_corpus_file: Path, tmp_path: Path) -> None:
    Vocabulary(["zebra", "cat", "dog"], [1, 1, 1]).save(tmp_path / "v.tsv")
    data = SkipGramDataModule(str(topic_corpus_file), vocabulary_path=str(tmp_path / "v.tsv"))
    assert data.vocab_size == 3
    assert set(data.store.tokens.tolist()) == {1, 2}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"window": 0}, "window must be >= 1"),
        ({"sample": 0.0}, "sample must be > 0"),
        ({"batch_size": 0}, "batch_size"),
        ({"min_count": 0}, "min_count must be >= 1"),
    ],
)
def test_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SkipGramDataModule("unused.txt", **kwargs)


def test_min_count_that_empties_the_vocabulary(topic_corpus_file: Path) -> None:
    data = SkipGramDataModule(str(topic_corpus_file), min_count=10**9)
    with pytest.raises(ValueError, match="leaves an empty vocabulary"):
        data.vocab_size  # noqa: B018


def test_empty_corpus(tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_text("\n\n", encoding="utf-8")
    with pytest.raises(ValueError, match="corpus is empty"):
        SkipGramDataModule(str(tmp_path / "empty.txt")).vocab_size  # noqa: B018


def test_windows_are_reproducible(topic_corpus_file: Path) -> None:
    def first_batch(seed: int) -> SkipGramBatch:
        data = SkipGramDataModule(str(topic_corpus_file), min_count=1, batch_size=400, seed=seed,
                                  shuffle=False)
        data.setup("fit")
        return data.on_after_batch_transfer(next(iter(data.train_dataloader())), 0)

    a, b, c = first_batch(0), first_batch(0), first_batch(1)
    assert torch.equal(a.mask, b.mask) and torch.equal(a.centers, b.centers)
    assert not (a.centers.shape == c.centers.shape and torch.equal(a.mask, c.mask))


def test_window_stream_is_not_the_sampler_stream(topic_corpus_file: Path) -> None:
    data = SkipGramDataModule(str(topic_corpus_file), min_count=1, seed=0)
    data.setup("fit")
    chunk = next(iter(data.train_dataloader()))
    data.on_after_batch_transfer(chunk, 0)
    window_stream = data._stream.generator(torch.device("cpu"))
    sampler_stream = UnigramSampler(seed=0).stream.generator(torch.device("cpu"))
    assert not torch.equal(torch.rand(8, generator=window_stream),
                           torch.rand(8, generator=sampler_stream))


def test_datamodule_state_continues_the_window_stream(topic_corpus_file: Path) -> None:
    def data_module() -> SkipGramDataModule:
        data = SkipGramDataModule(str(topic_corpus_file), min_count=1, shuffle=False)
        data.setup("fit")
        return data

    original = data_module()
    chunk = next(iter(original.train_dataloader()))
    original.on_after_batch_transfer(chunk, 0)
    resumed = data_module()
    resumed.load_state_dict(original.state_dict())
    assert torch.equal(original.on_after_batch_transfer(chunk, 0).mask,
                       resumed.on_after_batch_transfer(chunk, 0).mask)


def test_window_streams_of_different_ranks_differ_after_one_checkpoint(
    topic_corpus_file: Path,
) -> None:
    original = SkipGramDataModule(str(topic_corpus_file), min_count=1, shuffle=False)
    original.setup("fit")
    chunk = next(iter(original.train_dataloader()))
    original.on_after_batch_transfer(chunk, 0)
    state = original.state_dict()
    streams = []
    for rank in (0, 1):
        resumed = SkipGramDataModule(str(topic_corpus_file), min_count=1, shuffle=False)
        resumed.load_state_dict(state)
        resumed._stream.set_rank(rank)
        streams.append(torch.rand(16, generator=resumed._stream.generator(torch.device("cpu"))))
    assert not torch.equal(streams[0], streams[1])
