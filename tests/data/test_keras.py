"""skipgrams / make_sampling_table against a naive transcription of Keras' algorithm."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from nslightning.data import make_sampling_table, skipgrams
from nslightning.samplers import UniformSampler, UnigramSampler


def keras_skipgrams(
    sequence,
    vocabulary_size,
    window_size=4,
    negative_samples=1.0,
    shuffle=True,
    categorical=False,
    sampling_table=None,
    seed=None,
):
    """Keras' ``keras.preprocessing.sequence.skipgrams``, loop by loop."""
    couples, labels = [], []
    for i, wi in enumerate(sequence):
        if not wi:
            continue
        if sampling_table is not None and sampling_table[wi] < random.random():
            continue
        window_start = max(0, i - window_size)
        window_end = min(len(sequence), i + window_size + 1)
        for j in range(window_start, window_end):
            if j != i:
                wj = sequence[j]
                if not wj:
                    continue
                couples.append([wi, wj])
                labels.append([0, 1] if categorical else 1)
    if negative_samples > 0:
        num_negative_samples = int(len(labels) * negative_samples)
        words = [c[0] for c in couples]
        random.shuffle(words)
        couples += [
            [words[i % len(words)], random.randint(1, vocabulary_size - 1)]
            for i in range(num_negative_samples)
        ]
        labels += [[1, 0] if categorical else 0] * num_negative_samples
    if shuffle:
        if seed is None:
            seed = random.randint(0, 10_000_000)
        random.seed(seed)
        random.shuffle(couples)
        random.seed(seed)
        random.shuffle(labels)
    return couples, labels


def keras_sampling_table(size, sampling_factor=1e-5):
    gamma = 0.577
    rank = np.arange(size)
    rank[0] = 1
    inv_fq = rank * (np.log(rank) + gamma) + 0.5 - 1.0 / (12.0 * rank)
    f = sampling_factor * inv_fq
    return np.minimum(1.0, f / np.sqrt(f))


def random_sequence(length, vocabulary_size, seed, zeros=0.0):
    rng = np.random.default_rng(seed)
    seq = rng.integers(1, vocabulary_size, size=length)
    seq[rng.random(length) < zeros] = 0
    return seq.tolist()


SEQUENCES = {
    "plain": random_sequence(30, 12, seed=0),
    "with-zeros": random_sequence(30, 12, seed=1, zeros=0.3),
    "zeros-at-ends": [0, 0, 3, 4, 0, 5, 0, 0, 6, 7, 0],
    "short": [5, 2],
    "single": [7],
    "all-zeros": [0, 0, 0],
    "empty": [],
}


# ------------------------------------------------------------------ exact Keras compatibility
@pytest.mark.parametrize("name", sorted(SEQUENCES))
@pytest.mark.parametrize("window_size", [1, 2, 4, 40])
@pytest.mark.parametrize("categorical", [False, True])
def test_positives_match_keras_exactly(name, window_size, categorical):
    seq = SEQUENCES[name]
    expected = keras_skipgrams(
        seq, 12, window_size, negative_samples=0.0, shuffle=False, categorical=categorical
    )
    got = skipgrams(
        seq, 12, window_size, negative_samples=0.0, shuffle=False, categorical=categorical, seed=0
    )
    assert got == expected
    assert isinstance(got[0], list) and isinstance(got[1], list)


def test_numpy_input_and_keep_all_sampling_table_match_keras():
    seq = SEQUENCES["with-zeros"]
    expected = keras_skipgrams(seq, 12, 3, negative_samples=0.0, shuffle=False)
    got = skipgrams(
        np.array(seq), 12, 3, negative_samples=0.0, shuffle=False, sampling_table=np.ones(12)
    )
    assert got == expected
    assert all(type(x) is int for couple in got[0] for x in couple)
    assert all(type(x) is int for x in got[1])


def test_zero_sampling_table_drops_everything():
    assert skipgrams(SEQUENCES["plain"], 12, 2, sampling_table=np.zeros(12), seed=0) == ([], [])


@pytest.mark.parametrize("negative_samples", [0.0, 0.3, 0.5, 1.0, 2.0, 2.7])
@pytest.mark.parametrize("name", ["plain", "with-zeros", "short", "single", "empty"])
def test_number_of_couples_matches_keras(name, negative_samples):
    seq = SEQUENCES[name]
    expected, _ = keras_skipgrams(seq, 12, 2, negative_samples=negative_samples, shuffle=False)
    got, labels = skipgrams(seq, 12, 2, negative_samples=negative_samples, seed=0)
    assert len(got) == len(labels) == len(expected)


# --------------------------------------------------------------------------------- negatives
def split(couples, labels):
    positives = [tuple(c) for c, y in zip(couples, labels, strict=True) if y == 1]
    negatives = [tuple(c) for c, y in zip(couples, labels, strict=True) if y == 0]
    return positives, negatives


@pytest.mark.parametrize("negative_samples", [0.4, 1.0, 1.7, 3.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_negatives_follow_keras_law(negative_samples, seed):
    vocabulary_size = 12
    seq = SEQUENCES["with-zeros"]
    couples, labels = skipgrams(
        seq, vocabulary_size, 3, negative_samples=negative_samples, shuffle=False, seed=seed
    )
    positives, negatives = split(couples, labels)
    expected_positives, _ = keras_skipgrams(seq, vocabulary_size, 3, 0.0, shuffle=False)
    assert positives == [tuple(c) for c in expected_positives]
    num_pos = len(positives)
    assert len(negatives) == int(num_pos * negative_samples)
    # Unshuffled: the positives come first, then the negatives.
    assert labels == [1] * num_pos + [0] * len(negatives)
    # Negative contexts are uniform ids in [1, V - 1].
    assert all(1 <= ctx <= vocabulary_size - 1 for _, ctx in negatives)
    # Negative first words cycle through a shuffled copy of the positive first words.
    pos_words = Counter(w for w, _ in positives)
    neg_words = Counter(w for w, _ in negatives)
    assert set(neg_words) <= set(pos_words)
    cycles, rest = divmod(len(negatives), num_pos)
    extra = 0
    for word, count in pos_words.items():
        leftover = neg_words.get(word, 0) - cycles * count
        assert 0 <= leftover <= count
        extra += leftover
    assert extra == rest


def test_whole_multiples_repeat_every_first_word_exactly():
    couples, labels = skipgrams(SEQUENCES["plain"], 12, 2, negative_samples=2.0, seed=3)
    positives, negatives = split(couples, labels)
    pos_words = Counter(w for w, _ in positives)
    assert Counter(w for w, _ in negatives) == Counter({w: 2 * c for w, c in pos_words.items()})


def test_negative_contexts_cover_the_range_uniformly():
    vocabulary_size = 6
    seq = random_sequence(2000, vocabulary_size, seed=4)
    couples, labels = skipgrams(seq, vocabulary_size, 2, negative_samples=3.0, seed=5)
    _, negatives = split(couples, labels)
    contexts = np.array([ctx for _, ctx in negatives])
    observed = np.bincount(contexts, minlength=vocabulary_size)
    assert observed[0] == 0
    assert chisquare(observed[1:]).pvalue > 1e-3


def test_categorical_labels():
    couples, labels = skipgrams(SEQUENCES["plain"], 12, 2, categorical=True, seed=0)
    plain_couples, plain_labels = skipgrams(SEQUENCES["plain"], 12, 2, seed=0)
    assert couples == plain_couples
    assert labels == [[1 - y, y] for y in plain_labels]
    assert {tuple(y) for y in labels} == {(0, 1), (1, 0)}


def test_shuffle_permutes_couples_and_labels_together():
    seq = SEQUENCES["with-zeros"]
    shuffled = skipgrams(seq, 12, 2, negative_samples=1.5, shuffle=True, seed=9)
    ordered = skipgrams(seq, 12, 2, negative_samples=1.5, shuffle=False, seed=9)
    pairs = sorted((tuple(c), y) for c, y in zip(*shuffled, strict=True))
    assert pairs == sorted((tuple(c), y) for c, y in zip(*ordered, strict=True))
    assert shuffled[0] != ordered[0]


# ------------------------------------------------------------------------- reproducibility
SUBSAMPLING = np.linspace(0.2, 0.9, 12)


@pytest.mark.parametrize("kwargs", [{}, {"sampling_table": SUBSAMPLING}, {"categorical": True}])
def test_same_seed_same_output_different_seed_different_output(kwargs):
    seq = random_sequence(200, 12, seed=6, zeros=0.1)
    a = skipgrams(seq, 12, 3, negative_samples=1.0, seed=42, **kwargs)
    b = skipgrams(seq, 12, 3, negative_samples=1.0, seed=42, **kwargs)
    c = skipgrams(seq, 12, 3, negative_samples=1.0, seed=43, **kwargs)
    assert a == b
    assert a != c


def test_subsampling_is_seeded_and_only_drops_first_words():
    seq = random_sequence(400, 12, seed=7)
    kwargs = {"negative_samples": 0.0, "shuffle": False, "sampling_table": SUBSAMPLING}
    a = skipgrams(seq, 12, 2, seed=1, **kwargs)
    assert a == skipgrams(seq, 12, 2, seed=1, **kwargs)
    assert a != skipgrams(seq, 12, 2, seed=2, **kwargs)
    # Subsampling drops whole centers (all couples of a first word position), never contexts.
    table = np.ones(12)
    table[5] = 0.0
    couples, _ = skipgrams(seq, 12, 2, seed=0, negative_samples=0.0, sampling_table=table)
    assert all(w != 5 for w, _ in couples)
    assert any(ctx == 5 for _, ctx in couples)
    full, _ = keras_skipgrams(seq, 12, 2, 0.0, shuffle=False)
    assert sorted(map(tuple, couples)) == sorted(tuple(c) for c in full if c[0] != 5)


def test_subsampling_keep_rate():
    seq = [3] * 4000
    couples, _ = skipgrams(
        seq, 12, 1, negative_samples=0.0, shuffle=False, sampling_table=np.full(12, 0.25), seed=0
    )
    # Each kept interior center gives 2 couples: about a quarter of 2 * 4000.
    assert 0.22 < len(couples) / 8000 < 0.28


# --------------------------------------------------------------------------- sampling table
@pytest.mark.parametrize("size", [1, 2, 10, 1000, 100_000])
@pytest.mark.parametrize("sampling_factor", [1e-5, 1e-3, 0.5])
def test_make_sampling_table_equals_keras_formula(size, sampling_factor):
    got = make_sampling_table(size, sampling_factor)
    expected = keras_sampling_table(size, sampling_factor)
    assert got.shape == (size,)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=0)
    assert ((got > 0) & (got <= 1)).all()


def test_make_sampling_table_default_factor_and_monotonicity():
    table = make_sampling_table(1000)
    np.testing.assert_allclose(table, keras_sampling_table(1000), rtol=1e-12)
    assert (np.diff(table[1:]) >= 0).all()  # rarer (higher rank) words are kept more often


@pytest.mark.parametrize("args", [(0,), (-1,), (10, 0.0), (10, -1e-5)])
def test_make_sampling_table_bad_arguments(args):
    with pytest.raises(ValueError):
        make_sampling_table(*args)


# ---------------------------------------------------------------------------------- samplers
def test_unigram_sampler_negatives_follow_its_distribution_and_never_zero():
    counts = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0, 10.0])
    vocabulary_size = counts.numel()
    sampler = UnigramSampler(power=1.0, seed=0)
    sampler.setup(counts)
    seq = random_sequence(500, vocabulary_size, seed=8)
    couples, labels = skipgrams(
        seq, vocabulary_size, 2, negative_samples=5.0, seed=0, sampler=sampler
    )
    _, negatives = split(couples, labels)
    contexts = np.array([ctx for _, ctx in negatives])
    assert contexts.size > 5000
    assert (contexts != 0).all()
    observed = np.bincount(contexts, minlength=vocabulary_size)
    probs = (counts / counts.sum()).numpy()
    assert chisquare(observed[1:], probs[1:] * contexts.size).pvalue > 1e-3
    # ...which is not uniform (the check can fail).
    assert chisquare(observed[1:]).pvalue < 1e-10


def test_sampler_draws_of_zero_are_redrawn():
    vocabulary_size = 5
    sampler = UniformSampler(seed=0)
    sampler.setup(torch.ones(vocabulary_size))  # id 0 has probability 1/5
    seq = random_sequence(300, vocabulary_size, seed=9)
    couples, labels = skipgrams(
        seq, vocabulary_size, 2, negative_samples=2.0, seed=1, sampler=sampler
    )
    _, negatives = split(couples, labels)
    contexts = np.array([ctx for _, ctx in negatives])
    assert (contexts != 0).all()
    assert set(contexts.tolist()) == set(range(1, vocabulary_size))


def test_sampler_output_is_reproducible_under_seed():
    sampler = UnigramSampler(power=0.75, seed=123)
    sampler.setup(torch.tensor([0.0, 5.0, 1.0, 2.0, 8.0, 3.0]))
    seq = random_sequence(100, 6, seed=10)
    a = skipgrams(seq, 6, 2, seed=4, sampler=sampler)
    sampler.sample(torch.tensor([1, 2]), 7)  # using the sampler in between changes nothing
    b = skipgrams(seq, 6, 2, seed=4, sampler=sampler)
    c = skipgrams(seq, 6, 2, seed=5, sampler=sampler)
    assert a == b
    assert a != c


def test_sampler_that_only_draws_zero_raises():
    sampler = UnigramSampler(power=1.0)
    sampler.setup(torch.tensor([1.0, 0.0, 0.0]))
    with pytest.raises(ValueError, match="id 0"):
        skipgrams([1, 2, 1, 2], 3, 1, seed=0, sampler=sampler)


def test_sampler_with_wrong_size_raises():
    sampler = UniformSampler()
    sampler.setup(torch.ones(7))
    with pytest.raises(ValueError, match="vocabulary_size"):
        skipgrams([1, 2, 3], 6, 1, sampler=sampler)


# ------------------------------------------------------------------------- exclude_contexts
def clashes(couples, labels):
    positives, negatives = split(couples, labels)
    true_pairs = set(positives)
    return [pair for pair in negatives if pair in true_pairs]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("use_sampler", [False, True])
def test_exclude_contexts_never_labels_a_true_context_negative(seed, use_sampler):
    vocabulary_size = 4
    # Window 1: the contexts of 1 are {2, 3}, of 2 {1, 3}, of 3 {1, 2}: one non-context each.
    seq = [1, 2, 1, 2, 3, 1, 2, 1, 2] * 5
    sampler = None
    if use_sampler:
        sampler = UnigramSampler(power=1.0, seed=seed)
        sampler.setup(torch.tensor([0.0, 3.0, 2.0, 1.0]))
    couples, labels = skipgrams(
        seq, vocabulary_size, 1, negative_samples=3.0, seed=seed, exclude_contexts=True,
        sampler=sampler,
    )
    assert labels.count(0) == int(labels.count(1) * 3.0)
    assert clashes(couples, labels) == []
    _, negatives = split(couples, labels)
    assert all(word == ctx for word, ctx in negatives)


def test_exclude_contexts_false_does_clash_on_tiny_vocabulary():
    # V = 3 and a 1-2 alternation: half of all uniform negatives are true contexts.
    seq = [1, 2] * 20
    kwargs = {"negative_samples": 2.0, "seed": 0}
    couples, labels = skipgrams(seq, 3, 1, exclude_contexts=False, **kwargs)
    assert len(clashes(couples, labels)) > 0
    couples, labels = skipgrams(seq, 3, 1, exclude_contexts=True, **kwargs)
    assert clashes(couples, labels) == []
    # The only non-context of 1 is 1, of 2 is 2.
    _, negatives = split(couples, labels)
    assert all(word == ctx for word, ctx in negatives)


def test_exclude_contexts_impossible_raises():
    # Every id in [1, V) is a context of every word: no negative can be found.
    with pytest.raises(ValueError, match="exclude_contexts"):
        skipgrams([1, 2, 1, 2], 3, 3, negative_samples=1.0, seed=0, exclude_contexts=True)


# -------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "kwargs,error",
    [
        ({"vocabulary_size": 1}, ValueError),
        ({"vocabulary_size": 0}, ValueError),
        ({"window_size": 0}, ValueError),
        ({"window_size": -2}, ValueError),
        ({"negative_samples": -0.5}, ValueError),
        ({"sequence": [1, 2, 12]}, IndexError),
        ({"sequence": [1, -1, 2]}, IndexError),
        ({"sampling_table": np.ones(5)}, ValueError),
    ],
)
def test_bad_input_raises(kwargs, error):
    arguments = {"sequence": [1, 2, 3, 4], "vocabulary_size": 12, "window_size": 2, "seed": 0}
    arguments.update(kwargs)
    with pytest.raises(error):
        skipgrams(**arguments)


def test_keras_skipgrams_leave_the_callers_sampler_untouched() -> None:
    def fresh() -> UnigramSampler:
        sampler = UnigramSampler(seed=11)
        sampler.setup(torch.tensor([0.0, 5, 4, 3, 2, 1]))
        return sampler

    used, twin = fresh(), fresh()
    positives = torch.ones(9, dtype=torch.long)
    used.sample(positives, 2), twin.sample(positives, 2)
    skipgrams([1, 2, 3, 4, 5, 1, 2], 6, seed=0, sampler=used)
    assert used.seed == 11
    assert torch.equal(used.sample(positives, 4).ids, twin.sample(positives, 4).ids)
