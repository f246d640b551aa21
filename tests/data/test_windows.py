from __future__ import annotations

import pytest
import torch

from nslightning.data import skipgram_windows


def pairs_of(batch) -> set[tuple[int, int, int]]:
    rows, slots = batch.mask.nonzero(as_tuple=True)
    return {
        (int(r), int(batch.centers[r]), int(batch.contexts[r, s]))
        for r, s in zip(rows, slots, strict=True)
    }


def test_window_one_gives_neighbours_within_sentences() -> None:
    tokens = torch.tensor([10, 11, 12, 20, 21])
    sentences = torch.tensor([0, 0, 0, 1, 1])
    batch = skipgram_windows(tokens, sentences, 1, torch.Generator().manual_seed(0))
    assert pairs_of(batch) == {
        (0, 10, 11), (1, 11, 10), (1, 11, 12), (2, 12, 11), (3, 20, 21), (4, 21, 20),
    }
    assert batch.num_tokens == 5


def test_dynamic_window_is_uniform_in_one_to_w() -> None:
    window = 4
    num = 200_000
    tokens = torch.arange(num) % 97
    batch = skipgram_windows(tokens, torch.zeros(num, dtype=torch.long), window,
                             torch.Generator().manual_seed(1))
    offsets = torch.cat([torch.arange(-window, 0), torch.arange(1, window + 1)])
    reach = (batch.mask * offsets.abs()).amax(dim=1)[window:-window]
    frequencies = torch.bincount(reach, minlength=window + 1)[1:].double() / reach.numel()
    assert torch.allclose(frequencies, torch.full((window,), 1 / window).double(), atol=0.01)
    # symmetric: the same reach on both sides
    left = (batch.mask[:, :window] * offsets[:window].abs()).amax(dim=1)[window:-window]
    assert torch.equal(left, reach)
    positions = torch.arange(num).unsqueeze(1) + offsets
    assert (batch.contexts[batch.mask] == positions[batch.mask] % 97).all()


def test_subsampling_keeps_the_expected_share_and_reaches_past_dropped_words() -> None:
    num = 100_000
    tokens = torch.arange(num) % 2  # id 0 kept with prob 0.25, id 1 always
    keep = torch.tensor([0.25, 1.0])
    batch = skipgram_windows(tokens, torch.zeros(num, dtype=torch.long), 1,
                             torch.Generator().manual_seed(2), keep_prob=keep)
    kept_zeros = int((batch.centers == 0).sum())
    assert abs(kept_zeros / (num / 2) - 0.25) < 0.01
    assert batch.centers.numel() == kept_zeros + num // 2
    # with id 0 mostly dropped, 1s become neighbours of 1s
    assert ((batch.centers.unsqueeze(1) == 1) & (batch.contexts == 1) & batch.mask).any()


def test_padding_path_equals_exact_compaction() -> None:
    torch.manual_seed(0)
    tokens = torch.randint(0, 50, (3000,))
    sentences = torch.arange(3000) // 37
    keep = torch.rand(50)
    exact = skipgram_windows(tokens, sentences, 1, torch.Generator().manual_seed(3), keep, True)
    padded = skipgram_windows(tokens, sentences, 1, torch.Generator().manual_seed(3), keep, False)
    n = exact.centers.numel()
    assert padded.centers.numel() == 3000
    assert torch.equal(padded.centers[:n], exact.centers)
    assert torch.equal(padded.mask[:n], exact.mask)
    assert torch.equal(padded.contexts[:n], exact.contexts)
    assert not padded.mask[n:].any()


def test_window_must_be_positive() -> None:
    with pytest.raises(ValueError, match="window must be >= 1"):
        skipgram_windows(torch.tensor([1]), torch.tensor([0]), 0, torch.Generator())
