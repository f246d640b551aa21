"""Text for a language model: splits by document, a vocabulary with ``<unk>`` and ``<eos>``, ids.

A line of the corpus is a document (an article of the Wikipedia sample) or a sentence; each
line is followed by ``<eos>``, and tokens outside the vocabulary become ``<unk>``, so that
every token of the text is predicted and perplexities compare across vocabularies.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from nslightning.data.vocabulary import Vocabulary

UNK = "<unk>"
EOS = "<eos>"
SPECIALS = (UNK, EOS)

Lines = list[list[str]]


def split_lines(
    lines: Lines, val_fraction: float, test_fraction: float, seed: int = 0
) -> tuple[Lines, Lines, Lines]:
    """Splits whole lines (documents) into train, validation and test, deterministically.

    The lines are visited in an order fixed by ``seed``; test takes them until it holds at least
    ``test_fraction`` of the tokens, then validation until ``val_fraction``, and train the rest.
    Each split keeps the corpus order of its lines.

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
    if len(lines) < 3:
        raise ValueError(
            f"the corpus has {len(lines)} non-empty line(s), but a split by document needs at "
            "least 3 (one per split); give separate files with --data.val_corpus and "
            "--data.test_corpus, or split the text into more lines."
        )
    order = np.random.default_rng(seed).permutation(len(lines))
    lengths = np.asarray([len(lines[i]) + 1 for i in order], dtype=np.int64)  # + <eos>
    ends = np.cumsum(lengths) / lengths.sum()
    test_end = int(np.searchsorted(ends, test_fraction)) + 1
    val_end = int(np.searchsorted(ends, test_fraction + val_fraction)) + 1
    val_end = min(max(val_end, test_end + 1), len(lines) - 1)
    test_end = min(test_end, val_end - 1)
    parts = (order[val_end:], order[test_end:val_end], order[:test_end])
    train, val, test = ([lines[i] for i in np.sort(part)] for part in parts)
    return train, val, test


def build_vocabulary(
    lines: Sequence[Sequence[str]], min_count: int = 1, max_size: int | None = None
) -> Vocabulary:
    """The vocabulary of ``lines``: tokens seen ``min_count`` times or more, plus ``<unk>``
    (counting the tokens it replaces) and ``<eos>`` (one per line), sorted by count.

    Raises:
        ValueError: no tokens, ``min_count < 1`` or ``max_size < 3``.
    """
    if min_count < 1:
        raise ValueError(f"min_count must be >= 1, got {min_count}.")
    if max_size is not None and max_size < 3:
        raise ValueError(
            f"max_vocab_size must be >= 3 (<unk>, <eos> and a word) or None, got {max_size}."
        )
    counts: Counter[str] = Counter()
    for line in lines:
        counts.update(line)
    if not counts:
        raise ValueError(
            "the training text is empty: no tokens were read; check the corpus path and that "
            "its files hold whitespace-separated text."
        )
    specials = {UNK: counts.pop(UNK, 0), EOS: counts.pop(EOS, 0) + len(lines)}
    kept = sorted(
        ((token, count) for token, count in counts.items() if count >= min_count),
        key=lambda item: (-item[1], item[0]),
    )
    if max_size is not None:
        kept = kept[: max_size - len(specials)]
    specials[UNK] += sum(counts.values()) - sum(count for _, count in kept)
    ordered = sorted([*kept, *specials.items()], key=lambda item: (-item[1], item[0]))
    return Vocabulary([token for token, _ in ordered], [count for _, count in ordered])


def encode_lines(lines: Sequence[Sequence[str]], vocabulary: Vocabulary) -> Tensor:
    """``(T,)`` int64 ids of the lines, each followed by ``<eos>``; unknown tokens are ``<unk>``.

    Raises:
        ValueError: the vocabulary lacks ``<unk>`` or ``<eos>``.
    """
    missing = [token for token in SPECIALS if token not in vocabulary]
    if missing:
        raise ValueError(
            f"the vocabulary lacks {', '.join(missing)}: a language model's vocabulary needs "
            f"{UNK} and {EOS}; build it with nslightning's LanguageModelDataModule."
        )
    index, unk, eos = vocabulary.index, vocabulary[UNK], vocabulary[EOS]
    ids: list[int] = []
    for line in lines:
        ids.extend(index.get(token, unk) for token in line)
        ids.append(eos)
    return torch.tensor(ids, dtype=torch.int64)
