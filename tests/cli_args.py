"""Command-line arguments shared by tests that run the CLI. A plain helper module (no tests)."""

from __future__ import annotations

from pathlib import Path

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def tiny_args(corpus: Path) -> list[str]:
    """``configs/skipgram.yaml`` on ``corpus``: 2 epochs of tiny batches, 8-dimensional vectors."""
    return [
        "-c", str(CONFIGS / "skipgram.yaml"),
        "--data.corpus", str(corpus), "--data.min_count", "1", "--data.batch_size", "600",
        "--trainer.max_epochs", "2", "--trainer.log_every_n_steps", "1",
        "--trainer.enable_progress_bar", "false", "--model.dim", "8",
    ]
