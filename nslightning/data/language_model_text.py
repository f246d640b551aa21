"""Text for a language model: splits by document, a vocabulary with ``<unk>`` and ``<eos>``.

A line of the corpus is a document (an article of the Wikipedia sample) or a sentence; each
line is followed by ``<eos>``, and tokens outside the vocabulary become ``<unk>``, so that
every token of the text is predicted and perplexities compare across vocabularies. The ids
themselves are written by :mod:`nslightning.data.language_model_store`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from nslightning.data.vocabulary import Vocabulary

UNK = "<unk>"
EOS = "<eos>"
SPECIALS = (UNK, EOS)


def split_assignment(
    lengths: np.ndarray, val_fraction: float, test_fraction: float, seed: int = 0
) -> np.ndarray:
    """The split of each line (document): 0 train, 1 validation, 2 test, deterministically.

    The lines are visited in an order fixed by ``seed``; test takes them until it holds at least
    ``test_fraction`` of the tokens (``<eos>`` included), then validation until
    ``val_fraction``, and train the rest.

    Args:
        lengths: ``(S,)`` number of tokens of each non-empty line.

    Returns:
        ``(S,)`` int8 split of each line.

    Raises:
        ValueError: a fraction outside ``(0, 1)``, fractions that leave nothing for training, or
            too few lines for three non-empty splits.
    """
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 < value < 1:
            raise ValueError(f"{name} must be in (0, 1), got {value}.")
    if val_fraction + test_fraction >= 1:
        raise ValueError(
            f"val_fraction + test_fraction = {val_fraction + test_fraction} leaves nothing to "
            "train on; keep their sum below 1."
        )
    count = len(lengths)
    if count < 3:
        raise ValueError(
            f"the corpus has {count} non-empty line(s), but a split by document needs at "
            "least 3 (one per split); give separate files with --data.val_corpus and "
            "--data.test_corpus, or split the text into more lines."
        )
    order = np.random.default_rng(seed).permutation(count)
    ends = np.empty(count, dtype=np.float64)  # with order: 16 bytes per line, no more
    for start in range(0, count, 1 << 20):
        ends[start : start + (1 << 20)] = lengths[order[start : start + (1 << 20)]]
    ends += 1  # an <eos> per line
    np.cumsum(ends, out=ends)
    ends /= ends[-1]
    test_end = int(np.searchsorted(ends, test_fraction)) + 1
    val_end = int(np.searchsorted(ends, test_fraction + val_fraction)) + 1
    val_end = min(max(val_end, test_end + 1), count - 1)
    test_end = min(test_end, val_end - 1)
    assignment = np.zeros(count, dtype=np.int8)
    assignment[order[:test_end]] = 2
    assignment[order[test_end:val_end]] = 1
    return assignment


def check_vocabulary_size(min_count: int, max_size: int | None) -> None:
    """Raises ``ValueError`` for ``min_count < 1`` or ``max_size < 3``."""
    if min_count < 1:
        raise ValueError(f"min_count must be >= 1, got {min_count}.")
    if max_size is not None and max_size < 3:
        raise ValueError(
            f"max_vocab_size must be >= 3 (<unk>, <eos> and a word) or None, got {max_size}."
        )


def vocabulary_from_counts(
    counts: Mapping[str, int],
    num_lines: int,
    min_count: int = 1,
    max_size: int | None = None,
    pruned: int = 0,
) -> Vocabulary:
    """The vocabulary of a text with these token ``counts`` over ``num_lines`` lines: tokens
    seen ``min_count`` times or more, plus ``<unk>`` (counting the tokens it replaces, and the
    ``pruned`` occurrences that counting dropped) and ``<eos>`` (one per line), sorted by
    count. The counts add up to the tokens of the text plus one ``<eos>`` per line.

    Raises:
        ValueError: no tokens, ``min_count < 1`` or ``max_size < 3``.
    """
    check_vocabulary_size(min_count, max_size)
    if not counts:
        raise ValueError(
            "the training text is empty: no tokens were read; check the corpus path and that "
            "its files hold whitespace-separated text."
        )
    words = dict(counts)
    specials = {UNK: words.pop(UNK, 0) + pruned, EOS: words.pop(EOS, 0) + num_lines}
    kept = sorted(
        ((token, count) for token, count in words.items() if count >= min_count),
        key=lambda item: (-item[1], item[0]),
    )
    if max_size is not None:
        kept = kept[: max_size - len(specials)]
    specials[UNK] += sum(words.values()) - sum(count for _, count in kept)
    ordered = sorted([*kept, *specials.items()], key=lambda item: (-item[1], item[0]))
    return Vocabulary([token for token, _ in ordered], [count for _, count in ordered])


def check_specials(vocabulary: Vocabulary) -> None:
    """Raises ``ValueError`` unless the vocabulary holds ``<unk>`` and ``<eos>``."""
    missing = [token for token in SPECIALS if token not in vocabulary]
    if missing:
        raise ValueError(
            f"the vocabulary lacks {', '.join(missing)}: a language model's vocabulary needs "
            f"{UNK} and {EOS}; build it with nslightning's LanguageModelDataModule."
        )
