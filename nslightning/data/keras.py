"""Keras-compatible ``skipgrams`` and ``make_sampling_table``, vectorised and reproducible.

Same semantics as ``keras.preprocessing.sequence``: id 0 is a non-word and never paired;
window pairs get label 1 and ``int(len(pairs) * negative_samples)`` negatives label 0, each
negative pairing a word taken from the positive pairs with a random word in ``[1, V)``. What
Keras leaves wrong is fixed: ``seed`` makes the subsampling and the negatives reproducible too
(Keras seeds only the final shuffle), negatives may come from any :class:`NegativeSampler`, and
``exclude_contexts=True`` never labels 0 a word that is a true context of the word.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch

from nslightning.samplers.base import NegativeSampler

_EULER_GAMMA = 0.577
_MAX_REDRAWS = 100


def make_sampling_table(size: int, sampling_factor: float = 1e-5) -> np.ndarray:
    """Keep probabilities for ids ``0..size-1`` ranked by frequency, assuming Zipf's law.

    The word of rank ``r`` has frequency about ``1 / (r (log r + γ))``; its keep probability is
    ``min(1, sqrt(sampling_factor / f) ...)`` as in word2vec's subsampling (Keras' formula).

    Args:
        size: vocabulary size.
        sampling_factor: word2vec's ``sample``.

    Returns:
        ``(size,)`` float64 probabilities.
    """
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}.")
    if not sampling_factor > 0:
        raise ValueError(f"sampling_factor must be > 0, got {sampling_factor}.")
    rank = np.arange(size, dtype=np.float64)
    rank[0] = 1.0
    inverse_frequency = rank * (np.log(rank) + _EULER_GAMMA) + 0.5 - 1.0 / (12.0 * rank)
    scaled = sampling_factor * inverse_frequency
    result: np.ndarray = np.minimum(1.0, scaled / np.sqrt(scaled))
    return result


def _window_pairs(ids: np.ndarray, window_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Row ``i`` of the (L, 2W) matrices: partner positions and validity, in Keras' order."""
    offsets = np.concatenate([np.arange(-window_size, 0), np.arange(1, window_size + 1)])
    partners = np.arange(ids.size)[:, None] + offsets
    valid = (partners >= 0) & (partners < ids.size)
    partners = np.clip(partners, 0, max(ids.size - 1, 0))
    valid &= ids[partners] != 0
    return partners, valid


def skipgrams(
    sequence: Sequence[int] | np.ndarray,
    vocabulary_size: int,
    window_size: int = 4,
    negative_samples: float = 1.0,
    shuffle: bool = True,
    categorical: bool = False,
    sampling_table: Sequence[float] | np.ndarray | None = None,
    seed: int | None = None,
    *,
    sampler: NegativeSampler | None = None,
    exclude_contexts: bool = False,
) -> tuple[list[list[int]], list[int] | list[list[int]]]:
    """(word, context) couples with labels, as ``keras.preprocessing.sequence.skipgrams``.

    Args:
        sequence: word ids; 0 is a non-word (skipped).
        vocabulary_size: ``V``; ids are in ``[0, V)``.
        window_size: pairs within this distance.
        negative_samples: negatives per positive couple (``int(P * negative_samples)`` in all).
        shuffle: shuffle couples and labels together.
        categorical: labels ``[0, 1]`` (positive) / ``[1, 0]`` (negative) instead of 1 / 0.
        sampling_table: keep probability per id for the first word of a couple
            (see :func:`make_sampling_table`).
        seed: seeds every random choice (subsampling, negatives, shuffle); ``None`` is random.
        sampler: draws negatives instead of Keras' uniform ``[1, V)``; it must be set up over
            ``V`` items; draws of id 0 are redrawn.
        exclude_contexts: redraw a negative that is a true in-window context of its word.

    Returns:
        ``(couples, labels)``: lists as Keras returns them.
    """
    ids = np.asarray(sequence, dtype=np.int64).reshape(-1)
    if vocabulary_size < 2:
        raise ValueError(f"vocabulary_size must be >= 2 (id 0 is reserved), got {vocabulary_size}.")
    if window_size < 1:
        raise ValueError(f"window_size must be >= 1, got {window_size}.")
    if negative_samples < 0:
        raise ValueError(f"negative_samples must be >= 0, got {negative_samples}.")
    if ids.size and (ids.min() < 0 or ids.max() >= vocabulary_size):
        raise IndexError(
            f"sequence ids must be in [0, {vocabulary_size}); saw {ids.min()}..{ids.max()}. "
            "Raise vocabulary_size or re-encode the sequence."
        )
    if sampler is not None and sampler.vocab_size != vocabulary_size:
        raise ValueError(
            f"the sampler is set up over {sampler.vocab_size} items, not vocabulary_size="
            f"{vocabulary_size}; call sampler.setup(counts) with one count per id."
        )
    rng = np.random.default_rng(seed)

    centers = ids != 0
    if sampling_table is not None:
        table = np.asarray(sampling_table, dtype=np.float64)
        if table.size < vocabulary_size:
            raise ValueError(
                f"sampling_table has {table.size} entries; it needs one per id ({vocabulary_size})."
            )
        centers &= table[ids] >= rng.random(ids.size)
    partners, valid = _window_pairs(ids, window_size)
    valid &= centers[:, None]
    rows, slots = np.nonzero(valid)
    words, contexts = ids[rows], ids[partners[rows, slots]]
    labels = np.ones(words.size, dtype=np.int64)

    num_negative = int(words.size * negative_samples)
    if num_negative > 0:
        negative_words = rng.permutation(words)[np.arange(num_negative) % words.size]
        negatives = _draw_negatives(negative_words, vocabulary_size, rng, sampler)
        if exclude_contexts:
            negatives = _redraw_contexts(
                negative_words, negatives, words, contexts, vocabulary_size, rng, sampler
            )
        words = np.concatenate([words, negative_words])
        contexts = np.concatenate([contexts, negatives])
        labels = np.concatenate([labels, np.zeros(num_negative, dtype=np.int64)])

    if shuffle:
        order = rng.permutation(words.size)
        words, contexts, labels = words[order], contexts[order], labels[order]
    couples = np.stack([words, contexts], axis=1).tolist()
    if categorical:
        return couples, np.stack([1 - labels, labels], axis=1).tolist()
    return couples, labels.tolist()


def _draw_negatives(
    words: np.ndarray,
    vocabulary_size: int,
    rng: np.random.Generator,
    sampler: NegativeSampler | None,
) -> np.ndarray:
    if sampler is None:
        return rng.integers(1, vocabulary_size, size=words.size)
    # Draw from a copy: the caller's sampler (its streams, a memory bank's queue) is untouched,
    # and the draws follow `seed` like the rest.
    worker = copy.deepcopy(sampler)
    worker.manual_seed(int(rng.integers(2**62)))
    draws = worker.sample(torch.from_numpy(words), 1).ids.squeeze(1).numpy()
    for _ in range(_MAX_REDRAWS):
        zero = draws == 0
        if not zero.any():
            return draws
        draws[zero] = worker.sample(torch.from_numpy(words[zero]), 1).ids.squeeze(1).numpy()
    raise ValueError("the sampler keeps drawing id 0 (a non-word); give id 0 a count of 0.")


def _redraw_contexts(
    negative_words: np.ndarray,
    negatives: np.ndarray,
    words: np.ndarray,
    contexts: np.ndarray,
    vocabulary_size: int,
    rng: np.random.Generator,
    sampler: NegativeSampler | None,
) -> np.ndarray:
    true_pairs = np.unique(words * vocabulary_size + contexts)
    for _ in range(_MAX_REDRAWS):
        clash = np.isin(negative_words * vocabulary_size + negatives, true_pairs)
        if not clash.any():
            return negatives
        negatives[clash] = _draw_negatives(negative_words[clash], vocabulary_size, rng, sampler)
    raise ValueError(
        "exclude_contexts: could not find negatives outside the true contexts after "
        f"{_MAX_REDRAWS} redraws; the vocabulary is too small for this window."
    )
