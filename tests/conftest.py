"""Shared fixtures: a small seeded corpus with structure, and an isolated cache; the
property tests' hypothesis settings."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# Property tests run the same cases for a given commit (derandomize: reproducible in CI), keep
# no example database, and put hypothesis's caches outside the repository.
os.environ.setdefault(
    "HYPOTHESIS_STORAGE_DIRECTORY", str(Path(tempfile.gettempdir()) / "nslightning-hypothesis")
)
settings.register_profile(
    "nslightning", deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("nslightning")

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
