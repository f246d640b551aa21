"""The most frequent items' vectors as a W&B table, for W&B's embedding projector."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import WandbLogger

from nslightning.callbacks.export import embedding_table


class EmbeddingProjector(pl.Callback):
    """Logs ``embeddings/<table>``: the ``top_n`` most frequent items of an embedding table as
    a W&B table with columns ``token``, ``count`` and ``vector`` (W&B's 2D projection panel
    reads the vector column: PCA, t-SNE or UMAP in the browser).

    Runs once at the end of fit, on rank 0, and only for W&B loggers (other loggers have no
    projector; the exported vectors serve them).

    Args:
        top_n: how many of the most frequent items.
        table: which of the task's ``embedding_tables()``; its first when ``None`` (skip-gram
            and LM: ``words``, contrastive: ``anchors``).
    """

    def __init__(self, top_n: int = 1000, table: str | None = None) -> None:
        if top_n < 1:
            raise ValueError(f"top_n must be >= 1, got {top_n}.")
        self.top_n = top_n
        self.table = table

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        loggers = [logger for logger in trainer.loggers if isinstance(logger, WandbLogger)]
        if not loggers or not trainer.is_global_zero:
            return
        name, rows = self.rows(trainer, pl_module)
        for logger in loggers:
            logger.log_table(
                key=f"embeddings/{name}", columns=["token", "count", "vector"], data=rows
            )

    def rows(self, trainer: pl.Trainer, pl_module: Any) -> tuple[str, list[list[Any]]]:
        """``(table name, [[token, count, vector], ...])`` by decreasing count."""
        name, vectors, vocabulary = embedding_table(
            trainer, pl_module, self.table, "EmbeddingProjector"
        )
        counts = torch.as_tensor(vocabulary.counts)
        top = torch.argsort(counts, descending=True, stable=True)[: self.top_n]
        return name, [
            [vocabulary.tokens[i], int(counts[i]), vector]
            for i, vector in zip(top.tolist(), vectors[top].float().cpu().tolist(), strict=True)
        ]
