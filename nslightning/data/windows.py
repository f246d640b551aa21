"""Vectorised skip-gram windows: subsampling and dynamic windows for a whole chunk at once."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


class SkipGramBatch(NamedTuple):
    """One training step of skip-gram, laid out per center word.

    Attributes:
        centers: ``(N,)`` long center ids (0 where the row is padding).
        contexts: ``(N, 2W)`` long context ids at offsets ``-W..-1, 1..W`` (0 where invalid).
        mask: ``(N, 2W)`` bool, ``True`` for a real (center, context) pair.
        num_tokens: raw corpus tokens the batch was made from (for words/s).
    """

    centers: Tensor
    contexts: Tensor
    mask: Tensor
    num_tokens: int


def skipgram_windows(
    tokens: Tensor,
    sentence_ids: Tensor,
    window: int,
    generator: torch.Generator,
    keep_prob: Tensor | None = None,
    compact_exactly: bool | None = None,
) -> SkipGramBatch:
    """Builds word2vec's (center, context) pairs for a chunk of the corpus, without Python loops.

    Follows word2vec.c: frequent words are first dropped with probability ``1 - keep_prob``
    (so windows reach past them), then each center gets a window size ``b`` uniform in
    ``1..window`` and pairs with the words at distance ``<= b`` in the same sentence. Nothing
    leaves the device: on the CPU the kept tokens are compacted exactly; on an accelerator they
    are compacted with a scatter (no host sync) and the rows past the kept count are padding
    with an all-``False`` mask.

    Args:
        tokens: ``(T,)`` integer ids of consecutive corpus tokens.
        sentence_ids: ``(T,)`` sentence index of each token; pairs never cross sentences.
        window: maximum window ``W >= 1``.
        generator: random generator on the tokens' device.
        keep_prob: ``(V,)`` keep probability per id (see ``keep_probabilities``), or ``None``.
        compact_exactly: drop the discarded tokens (a host sync) instead of padding; ``None``
            chooses exact compaction on the CPU and padding elsewhere.

    Returns:
        A :class:`SkipGramBatch` with ``N <= T`` rows.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}; word2vec uses 5.")
    device = tokens.device
    num = num_tokens = tokens.numel()
    tokens = tokens.long()
    sentence_ids = sentence_ids.long()
    if keep_prob is not None:
        keep = torch.rand(num, device=device, generator=generator) < keep_prob[tokens]
        if compact_exactly is None:
            compact_exactly = device.type == "cpu"
        if compact_exactly:
            # A host sync is free on the CPU: compact exactly, so no row is padding.
            tokens, sentence_ids = tokens[keep], sentence_ids[keep]
            num = tokens.numel()
        else:
            # On an accelerator, compact with a scatter and leave the tail as padding rows.
            slot = torch.cumsum(keep, 0) - 1
            slot = torch.where(keep, slot, torch.full_like(slot, num))
            tokens = torch.zeros(num + 1, dtype=torch.long, device=device).scatter_(
                0, slot, tokens
            )[:num]
            sentence_ids = torch.full((num + 1,), -1, dtype=torch.long, device=device).scatter_(
                0, slot, sentence_ids
            )[:num]
    offsets = torch.cat(
        [torch.arange(-window, 0, device=device), torch.arange(1, window + 1, device=device)]
    )
    positions = torch.arange(num, device=device).unsqueeze(1) + offsets  # (T, 2W)
    in_range = (positions >= 0) & (positions < num)
    positions = positions.clamp(0, max(num - 1, 0))
    reduced = torch.randint(1, window + 1, (num, 1), device=device, generator=generator)
    mask = (
        in_range
        & (offsets.abs() <= reduced)
        & (sentence_ids[positions] == sentence_ids.unsqueeze(1))
        & (sentence_ids >= 0).unsqueeze(1)
    )
    contexts = torch.where(mask, tokens[positions], torch.zeros_like(positions))
    return SkipGramBatch(centers=tokens, contexts=contexts, mask=mask, num_tokens=num_tokens)
