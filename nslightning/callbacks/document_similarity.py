"""Document vectors against the Lee et al. (2005) human similarity judgments gensim bundles."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from scipy.stats import pearsonr, spearmanr
from torch import Tensor


def lee_judgments() -> np.ndarray:
    """``(50, 50)`` mean human similarity of the 50 documents of gensim's ``lee.cor`` (upper
    triangle; Lee, Pincombe & Welsh 2005)."""
    from gensim.test.utils import datapath

    return np.loadtxt(Path(datapath("similarities0-1.txt")))


def lee_correlations(vectors: Tensor, judgments: np.ndarray) -> dict[str, float]:
    """Pearson and Spearman correlation of cosine similarities with the judgments.

    Args:
        vectors: ``(50, D)`` the vectors of documents ``lee:0`` ... ``lee:49``.
        judgments: ``(50, 50)`` from :func:`lee_judgments`; the 1,225 pairs above the diagonal
            are compared.

    Returns:
        ``{"lee_pearson": r, "lee_spearman": rho}``.
    """
    unit = F.normalize(vectors.double(), dim=1)
    cosine = (unit @ unit.T).numpy()
    upper = np.triu_indices(len(judgments), k=1)
    model, human = cosine[upper], judgments[upper]
    return {
        "lee_pearson": float(pearsonr(model, human)[0]),
        "lee_spearman": float(spearmanr(model, human)[0]),
    }


class LeeDocumentSimilarity(pl.Callback):
    """Logs ``val/lee_pearson`` and ``val/lee_spearman`` after each validation.

    The cosine similarity of the vectors of documents ``lee:0`` ... ``lee:49`` against the mean
    human judgments (Lee et al. 2005 report r = 0.60 for LSA). Transductive: the documents are
    anchors of the built-in ``lee-doc-words`` relation (PV-DBOW: document -> word pairs), and
    their vectors are rows of the anchor table. Inductive: they are held out of the relation
    (``lee-background-doc-words``) and the anchor encoder encodes them from features it was
    never trained on (``BagOfFeatures`` over ``lee-doc-bags``,
    ``configs/contrastive_inductive.yaml``).
    """

    def __init__(self) -> None:
        self.judgments = lee_judgments()
        self.last_results: dict[str, float] = {}

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        results: dict[str, float] = {}
        if trainer.is_global_zero:  # once, on rank 0; every rank logs the broadcast values
            results = lee_correlations(self._vectors(trainer, pl_module), self.judgments)
        self.last_results = trainer.strategy.broadcast(results)
        for name, value in self.last_results.items():
            pl_module.log(f"val/{name}", value, prog_bar=name == "lee_pearson", sync_dist=True)

    def _vectors(self, trainer: pl.Trainer, pl_module: Any) -> Tensor:
        datamodule = getattr(trainer, "datamodule", None)
        anchors = getattr(datamodule, "anchor_vocabulary", None)
        names = [f"lee:{i}" for i in range(len(self.judgments))]
        if anchors is not None and all(name in anchors for name in names):
            table = pl_module.embedding_tables()["anchors"]
            return table[torch.tensor([anchors[name] for name in names])]
        model: Any = getattr(pl_module, "embeddings", None)
        if callable(getattr(model, "encode_anchor_names", None)) and model.can_encode_names():
            # held out of the relation: the anchor encoder encodes them from their features
            return model.encode_anchor_names(names).float().cpu()
        raise RuntimeError(
            "LeeDocumentSimilarity needs the documents lee:0 ... lee:49: as anchors of the "
            "built-in relation (--data.path lee-doc-words), or held out and encoded by an "
            "anchor encoder that knows them (BagOfFeatures with path lee-doc-bags); or drop "
            "this callback."
        )
