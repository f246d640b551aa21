"""Pass 1 of the token store: token counts in bounded memory, with gensim's pruning rule."""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterable

from nslightning.data.corpus import CorpusWarning

DEFAULT_COUNT_LIMIT = 4_000_000


class TokenCounter:
    """Counts tokens; when the table passes ``limit`` distinct tokens, prunes the rarest.

    The rule is gensim's ``max_vocab_size``: each time the table holds more than ``limit``
    tokens, those seen fewer than ``t`` times so far are dropped and ``t`` grows by one (gensim
    starts at ``t = 1``, whose first prune drops nothing; here ``t`` starts at 2). A pruned
    token that comes back starts again from 0, so the counts of rare tokens are lower bounds;
    frequent tokens are counted exactly. A table of 4M tokens takes about 0.4 GB.

    Args:
        limit: most distinct tokens held, or ``None`` for no limit.
    """

    def __init__(self, limit: int | None = DEFAULT_COUNT_LIMIT) -> None:
        if limit is not None and limit < 1:
            raise ValueError(f"count_limit must be >= 1 or None, got {limit}.")
        self.limit = limit
        self.counts: Counter[str] = Counter()
        self.threshold = 2
        self.pruned_types = 0
        self.pruned_tokens = 0

    def update(self, tokens: Iterable[str]) -> None:
        """Counts ``tokens`` (one block of the corpus), then prunes if the table is too big."""
        self.counts.update(tokens)
        while self.limit is not None and len(self.counts) > self.limit:
            self._prune()

    def _prune(self) -> None:
        rare = [token for token, count in self.counts.items() if count < self.threshold]
        for token in rare:
            self.pruned_tokens += self.counts.pop(token)
        self.pruned_types += len(rare)
        self.threshold += 1

    def warn_if_pruned(self, source: str) -> None:
        """Says how much pruning changed the counts, if it happened."""
        if self.pruned_types:
            warnings.warn(
                f"{source}: more than count_limit={self.limit} distinct tokens; tokens seen "
                f"fewer than {self.threshold - 1} times were pruned while counting "
                f"({self.pruned_types} pruned entries, {self.pruned_tokens} occurrences), as "
                "gensim's max_vocab_size does: counts of rare tokens are lower bounds. Raise "
                "--data.count_limit (about 100 bytes per token) for exact counts.",
                CorpusWarning,
                stacklevel=2,
            )
