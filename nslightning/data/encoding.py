"""Turns a corpus into one flat id tensor in a single pass."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from nslightning.data.vocabulary import Vocabulary


@dataclass
class EncodedCorpus:
    """A corpus as ids.

    Attributes:
        tokens: ``(T,)`` int32 ids of the in-vocabulary tokens, sentence after sentence.
        sentence_ids: ``(T,)`` int32 index of the sentence (line) each token belongs to.
        vocabulary: the vocabulary the ids refer to.
    """

    tokens: Tensor
    sentence_ids: Tensor
    vocabulary: Vocabulary

    def __len__(self) -> int:
        return int(self.tokens.numel())


def encode_corpus(
    sentences: Iterable[Sequence[str]],
    *,
    min_count: int = 5,
    max_size: int | None = None,
    vocabulary: Vocabulary | None = None,
) -> EncodedCorpus:
    """Reads ``sentences`` once: counts tokens, builds (or applies) a vocabulary, encodes.

    Tokens are given provisional ids in first-seen order while counting; the vocabulary's order
    is applied afterwards with one vectorised remap, and out-of-vocabulary tokens are dropped.

    Args:
        sentences: token lists.
        min_count: minimum count to keep a token (ignored when ``vocabulary`` is given).
        max_size: maximum vocabulary size (ignored when ``vocabulary`` is given).
        vocabulary: an existing vocabulary to encode with, e.g. one saved with a checkpoint.
    """
    first_seen: dict[str, int] = {}
    flat: list[int] = []
    lengths: list[int] = []
    for sentence in sentences:
        for token in sentence:
            flat.append(first_seen.setdefault(token, len(first_seen)))
        lengths.append(len(sentence))
    provisional = np.asarray(flat, dtype=np.int64)
    seen_counts = np.bincount(provisional, minlength=len(first_seen))
    if vocabulary is None:
        vocabulary = Vocabulary.from_counts(
            dict(zip(first_seen, seen_counts.tolist(), strict=True)),
            min_count=min_count,
            max_size=max_size,
        )
    elif not first_seen:
        raise ValueError("the corpus is empty: no tokens were read; check the path.")
    remap = np.asarray([vocabulary.index.get(token, -1) for token in first_seen], dtype=np.int64)
    sentence_of = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    ids = remap[provisional] if provisional.size else provisional
    keep = ids >= 0
    if not keep.any():
        raise ValueError(
            "no corpus token is in the vocabulary; the vocabulary was built from another corpus."
        )
    return EncodedCorpus(
        tokens=torch.from_numpy(ids[keep].astype(np.int32)),
        sentence_ids=torch.from_numpy(sentence_of[keep].astype(np.int32)),
        vocabulary=vocabulary,
    )
