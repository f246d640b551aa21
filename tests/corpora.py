"""Tiny seeded data for tests: a topic corpus, pattern text for the language model, and a
relation file of groups for the contrastive task. A plain helper module (no tests), imported by
test files and by ``conftest.py``'s fixtures."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nslightning.data import LanguageModelDataModule

TOPICS = {
    "animals": ["cat", "dog", "horse", "cow", "sheep", "goat", "mouse", "bird"],
    "finance": ["bank", "money", "loan", "credit", "stock", "market", "price", "trade"],
    "sports": ["ball", "goal", "team", "match", "score", "coach", "league", "player"],
}
FILLER = ["the", "a", "of", "and", "in", "to", "is", "was"]


def make_topic_corpus(num_sentences: int = 400, seed: int = 0) -> list[list[str]]:
    """Sentences that mix one topic's words with frequent filler words (seeded)."""
    rng = np.random.default_rng(seed)
    names = sorted(TOPICS)
    sentences = []
    for _ in range(num_sentences):
        topic = TOPICS[names[rng.integers(len(names))]]
        length = int(rng.integers(8, 20))
        words = [
            FILLER[rng.integers(len(FILLER))] if rng.random() < 0.4 else topic[rng.integers(8)]
            for _ in range(length)
        ]
        sentences.append(words)
    return sentences


def pattern_text(path: Path, lines: int = 60, seed: int = 0, words: str = "abcdefghij") -> Path:
    """Lines that repeat one of a few fixed sequences, with some noise words (seeded)."""
    rng = np.random.default_rng(seed)
    patterns = [list(words[i:] + words[:i]) for i in range(0, len(words), 3)]
    text = []
    for _ in range(lines):
        pattern = patterns[rng.integers(len(patterns))]
        tokens = [w if rng.random() > 0.05 else words[rng.integers(len(words))] for w in pattern]
        text.append(" ".join(tokens * 2))
    path.write_text("\n".join(text) + "\n", encoding="utf-8")
    return path


def data_for(path: Path, **options) -> LanguageModelDataModule:
    """A small LanguageModelDataModule over the text file ``path`` (e.g. ``pattern_text``)."""
    settings = dict(corpus=str(path), min_count=1, batch_size=4, eval_batch_size=2, bptt=6)
    settings.update(options)
    return LanguageModelDataModule(**settings)


def write_groups(path: Path, num_groups: int = 4, anchors: int = 6, items: int = 8) -> Path:
    """Anchors linked to 3 items of their own group (seeded): a relation with structure."""
    rng = np.random.default_rng(0)
    lines = []
    for group in range(num_groups):
        for a in range(anchors):
            for item in rng.choice(items, size=3, replace=False):
                lines.append(f"user{group}_{a}\titem{group}_{item}\t{1 + a % 2}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
