from __future__ import annotations

import math

import pytest
import torch

from nslightning.data import keep_probabilities


def test_matches_word2vec_formula() -> None:
    counts = torch.tensor([1000, 100, 10, 1])
    sample = 1e-2
    total = float(counts.sum())
    expected = []
    for f in counts.tolist():
        t = sample * total
        expected.append(min(1.0, (math.sqrt(f / t) + 1) * t / f))
    result = keep_probabilities(counts, sample).double()
    assert torch.allclose(result, torch.tensor(expected).double())
    assert keep_probabilities(counts, sample)[0] < 1.0
    assert keep_probabilities(counts, sample)[-1] == 1.0


@pytest.mark.parametrize("sample", [0.0, -1e-3])
def test_non_positive_sample_is_rejected(sample: float) -> None:
    with pytest.raises(ValueError, match="sample must be > 0"):
        keep_probabilities(torch.tensor([3, 2]), sample)
