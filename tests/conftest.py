"""Shared fixtures: a small seeded corpus with structure, and an isolated cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

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


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Caches go to one temporary folder per test session; W&B stays offline."""
    monkeypatch.setenv("NSLIGHTNING_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")


@pytest.fixture
def topic_corpus_file(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(" ".join(s) for s in make_topic_corpus()) + "\n", encoding="utf-8")
    return path
