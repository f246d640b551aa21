"""Embedding tables for a two-sided relation and the pair scores of the contrastive task."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Score = Literal["dot", "cosine", "euclidean"]
_EPS = 1e-12


class PairEmbeddings(nn.Module):
    """An anchor table and an item table (or one shared table) and a score between them.

    Scores: ``dot`` (``a · i``), ``cosine`` (``a · i / (|a| |i|)``) or ``euclidean``
    (``-|a - i|``, the negative distance, as in Nickel & Kiela 2017's Euclidean baseline).
    Vectors start uniform in ``[-init_scale, init_scale)``.

    Args:
        num_anchors: anchor ids ``A``.
        vocab_size: item ids ``V``.
        dim: vector size ``D``.
        shared: one table for both sides (needs ``num_anchors == vocab_size``: one id space).
        score: ``"dot"``, ``"cosine"`` or ``"euclidean"``.
        init_scale: half-width of the uniform initialisation.
        sparse: sparse gradients (for SGD, SparseAdam or Adagrad on large tables).
    """

    def __init__(
        self,
        num_anchors: int,
        vocab_size: int,
        dim: int,
        shared: bool = False,
        score: Score = "dot",
        init_scale: float = 0.1,
        sparse: bool = False,
    ) -> None:
        super().__init__()
        if num_anchors < 1 or vocab_size < 1:
            raise ValueError(f"need >= 1 anchors and items, got {num_anchors} and {vocab_size}.")
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}.")
        if score not in ("dot", "cosine", "euclidean"):
            raise ValueError(f"score must be 'dot', 'cosine' or 'euclidean', got {score!r}.")
        if shared and num_anchors != vocab_size:
            raise ValueError(
                f"shared embeddings need one id space, but there are {num_anchors} anchors and "
                f"{vocab_size} items: set --data.shared_vocabulary true (or do not share tables)."
            )
        self.score: Score = score
        self.shared = shared
        self.anchor_table = nn.Embedding(num_anchors, dim, sparse=sparse)
        self.item_table = (
            self.anchor_table if shared else nn.Embedding(vocab_size, dim, sparse=sparse)
        )
        tables = [self.anchor_table] if shared else [self.anchor_table, self.item_table]
        with torch.no_grad():
            for table in tables:
                table.weight.uniform_(-init_scale, init_scale)

    @property
    def sparse(self) -> bool:
        return self.anchor_table.sparse

    def use_sparse_gradients(self, sparse: bool) -> None:
        """Switches the tables between sparse and dense gradients (DDP over NCCL needs dense)."""
        self.anchor_table.sparse = self.item_table.sparse = sparse

    @property
    def vocab_size(self) -> int:
        return self.item_table.num_embeddings

    @property
    def num_anchors(self) -> int:
        return self.anchor_table.num_embeddings

    def forward(self, anchors: Tensor, items: Tensor) -> Tensor:
        """Scores each anchor against the items of its row.

        Args:
            anchors: ``(B,)`` anchor ids.
            items: ``(B, M)`` item ids.

        Returns:
            ``(B, M)`` scores.
        """
        return self.pair_scores(self.anchor_table(anchors), self.item_table(items))

    def pair_scores(self, anchors: Tensor, items: Tensor) -> Tensor:
        """The score of vectors ``(B, D)`` against ``(B, M, D)`` -> ``(B, M)``."""
        if self.score == "euclidean":
            squared = (anchors.unsqueeze(1) - items).square().sum(-1)
            return -torch.sqrt(squared + _EPS)
        if self.score == "cosine":
            anchors = F.normalize(anchors, dim=-1, eps=_EPS)
            items = F.normalize(items, dim=-1, eps=_EPS)
        return torch.bmm(items, anchors.unsqueeze(-1)).squeeze(-1)

    def score_all(self, anchors: Tensor, items: Tensor | None = None) -> Tensor:
        """Scores anchors against shared items (every item by default), no gradient.

        Args:
            anchors: ``(A,)`` anchor ids.
            items: ``(C,)`` item ids, or ``None`` for all ``V`` items.

        Returns:
            ``(A, C)`` scores.
        """
        with torch.no_grad():
            left = self.anchor_table.weight.index_select(0, anchors)
            right = self.item_table.weight
            if items is not None:
                right = right.index_select(0, items)
            if self.score == "euclidean":
                return -torch.cdist(
                    left.unsqueeze(0), right.unsqueeze(0),
                    compute_mode="donot_use_mm_for_euclid_dist",
                ).squeeze(0)
            if self.score == "cosine":
                left = F.normalize(left, dim=-1, eps=_EPS)
                right = F.normalize(right, dim=-1, eps=_EPS)
            return left @ right.T

    def anchor_vectors(self) -> Tensor:
        """``(A, D)`` anchor vectors, detached."""
        return self.anchor_table.weight.detach()

    def item_vectors(self) -> Tensor:
        """``(V, D)`` item vectors, detached."""
        return self.item_table.weight.detach()


class PairScorer:
    """The contrastive task's ``scorer`` for hard-negative samplers, no gradient.

    ``scorer(anchors (B,), candidates (B, M))`` and ``scorer.mine(anchors (A,), items (C,))``
    give the model's scores; candidates that ``is_known(anchors, items)`` flags (known
    positives of the anchor) score ``-inf``, so that mining never selects them.

    Args:
        embeddings: the model.
        is_known: ``(anchors (B, 1) or (A, 1), items (B, M) or (1, C)) -> bool`` of the
            broadcast shape, or ``None``.
    """

    def __init__(
        self,
        embeddings: PairEmbeddings,
        is_known: Callable[[Tensor, Tensor], Tensor] | None = None,
    ) -> None:
        self.embeddings = embeddings
        self.is_known = is_known

    def __call__(self, anchors: Tensor, candidates: Tensor) -> Tensor:
        with torch.no_grad():
            scores = self.embeddings(anchors, candidates)
        return self._filter(scores, anchors.unsqueeze(-1), candidates)

    def mine(self, anchors: Tensor, items: Tensor) -> Tensor:
        scores = self.embeddings.score_all(anchors, items)
        return self._filter(scores, anchors.unsqueeze(-1), items.unsqueeze(0))

    def _filter(self, scores: Tensor, anchors: Tensor, items: Tensor) -> Tensor:
        if self.is_known is None:
            return scores
        return scores.masked_fill(self.is_known(anchors, items), float("-inf"))
