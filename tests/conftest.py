"""Shared fixtures: a small seeded corpus with structure, and an isolated cache; the
property tests' hypothesis settings."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.corpora import make_topic_corpus

# Scripts that tests start in subprocesses, not test modules: --doctest-modules (pyproject.toml)
# must not import them here (the Triton worker needs Triton, with TRITON_INTERPRET set first).
collect_ignore = ["kernels/triton_worker.py", "distributed/gloo_worker.py"]

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
