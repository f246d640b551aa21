"""The contrastive task's model: an anchor encoder, an item encoder and a score between them."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from nslightning.models.encoders import EmbeddingTable
from nslightning.models.scores import PairScore, ScoreName

#: ids encoded at once when a whole side is encoded without gradient (evaluation, mining)
ENCODE_CHUNK = 1 << 16


class PairEmbeddings(nn.Module):
    """Vectors of anchors and items, ``μ̂_φ(ids)``, and a score between them.

    Each side has an *encoder*, any module that maps ids ``(*,)`` to vectors ``(*, D)``: an
    :class:`~nslightning.models.encoders.EmbeddingTable` (one learned row per id, the
    default), a :class:`~nslightning.models.encoders.BagOfFeatures`, or your own module (see
    ``docs/encoders.md``). An encoder may have ``configure(num_ids, dim)``, called here with
    its side's number of ids and the coordinates per vector (so that it builds its
    parameters before a checkpoint is loaded), and ``bind(names)``, called by the task once
    the DataModule's vocabulary is known.

    Scores (:class:`~nslightning.models.scores.PairScore`): ``dot``, ``cosine``, ``euclidean``
    (``-|a - i|``, Nickel & Kiela 2017's Euclidean baseline), ``poincare`` and ``lorentz`` (minus
    the hyperbolic distance in the Poincaré ball / on the hyperboloid). With a hyperbolic score
    an embedding table holds points of the manifold (a ``geoopt.ManifoldParameter``, trained
    by a Riemannian optimizer; ``D + 1`` coordinates on the hyperboloid) and any other
    encoder's output is mapped onto it by the exponential map at the origin.

    Args:
        num_anchors: anchor ids ``A``.
        vocab_size: item ids ``V``.
        dim: vector size ``D``.
        shared: one encoder for both sides (needs ``num_anchors == vocab_size``: one id
            space).
        score: ``"dot"``, ``"cosine"``, ``"euclidean"``, ``"poincare"`` or ``"lorentz"``.
        init_scale: the default tables start uniform in ``[-init_scale, init_scale)`` (the
            tangent coordinates on the hyperboloid).
        sparse: sparse gradients for the default tables (for SGD, SparseAdam or Adagrad on
            large tables); not with a hyperbolic score.
        anchor_encoder: the anchors' encoder; a table when ``None``.
        item_encoder: the items' encoder; the anchor encoder when ``shared``, else a table,
            when ``None``.
    """

    def __init__(
        self,
        num_anchors: int,
        vocab_size: int,
        dim: int,
        shared: bool = False,
        score: ScoreName = "dot",
        init_scale: float = 0.1,
        sparse: bool = False,
        anchor_encoder: nn.Module | None = None,
        item_encoder: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if num_anchors < 1 or vocab_size < 1:
            raise ValueError(f"need >= 1 anchors and items, got {num_anchors} and {vocab_size}.")
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}.")
        self.geometry = PairScore(score)
        if shared and num_anchors != vocab_size:
            raise ValueError(
                f"shared embeddings need one id space, but there are {num_anchors} anchors and "
                f"{vocab_size} items: set --data.shared_vocabulary true (or do not share tables)."
            )
        if shared and anchor_encoder is not None and item_encoder is not None \
                and anchor_encoder is not item_encoder:
            raise ValueError(
                "shared_embeddings uses one encoder for both sides, but two were given: drop "
                "item_encoder, or set --model.shared_embeddings false."
            )
        if sparse and self.geometry.manifold is not None:
            raise ValueError(
                f"score {score!r} trains its tables with a Riemannian optimizer on dense "
                "gradients: set --model.sparse false."
            )
        self.score: ScoreName = score
        self.shared = shared
        self.dim = dim
        self.anchor_encoder = anchor_encoder or EmbeddingTable(init_scale, sparse)
        if shared:
            self.item_encoder = item_encoder or self.anchor_encoder
        else:
            self.item_encoder = item_encoder or EmbeddingTable(init_scale, sparse)
        self._configure(self.anchor_encoder, num_anchors)
        if self.item_encoder is not self.anchor_encoder:
            self._configure(self.item_encoder, vocab_size)
        self.num_anchors = num_anchors
        self.vocab_size = vocab_size

    def _configure(self, encoder: nn.Module, num_ids: int) -> None:
        table = isinstance(encoder, EmbeddingTable)
        configure = getattr(encoder, "configure", None)
        if callable(configure):
            # a table holds points of the manifold; other encoders give Euclidean vectors
            configure(num_ids, self.geometry.coordinates(self.dim) if table else self.dim)
        if isinstance(encoder, EmbeddingTable) and self.geometry.manifold is not None:
            import geoopt

            points = self.geometry.init_points(num_ids, self.dim, encoder.init_scale)
            embedding = encoder.table
            assert embedding is not None  # configured above
            embedding.weight = geoopt.ManifoldParameter(points, self.geometry.manifold)

    def encoders(self) -> list[nn.Module]:
        """The distinct encoders (one when shared)."""
        if self.item_encoder is self.anchor_encoder:
            return [self.anchor_encoder]
        return [self.anchor_encoder, self.item_encoder]

    def tables(self) -> Iterator[EmbeddingTable]:
        """The encoders that are embedding tables."""
        return (e for e in self.encoders() if isinstance(e, EmbeddingTable))

    @property
    def sparse(self) -> bool:
        return any(table.sparse for table in self.tables())

    def use_sparse_gradients(self, sparse: bool) -> None:
        """Switches the tables between sparse and dense gradients (DDP over NCCL needs dense)."""
        for table in self.tables():
            table.sparse = sparse

    def sparse_parameters(self) -> list[Tensor]:
        """The tables whose gradients are sparse now (other encoders' are dense)."""
        return [table.weight for table in self.tables() if table.sparse]

    @property
    def items_are_a_table(self) -> bool:
        """Whether item vectors are rows of a replicated table (ids then rebuild them on any
        rank), rather than the output of a model."""
        return isinstance(self.item_encoder, EmbeddingTable)

    # --------------------------------------------------------------- vectors
    def _encode(self, encoder: nn.Module, ids: Tensor) -> Tensor:
        vectors: Tensor = encoder(ids)
        if isinstance(encoder, EmbeddingTable):
            return vectors  # rows are points of the geometry already
        return self.geometry.to_manifold(vectors)

    def encode_anchors(self, anchors: Tensor) -> Tensor:
        """``(*,)`` anchor ids -> ``(*, D')`` points (``D' = D + 1`` on the hyperboloid)."""
        return self._encode(self.anchor_encoder, anchors)

    def encode_items(self, items: Tensor) -> Tensor:
        """``(*,)`` item ids -> ``(*, D')`` points."""
        return self._encode(self.item_encoder, items)

    def forward(self, anchors: Tensor, items: Tensor) -> Tensor:
        """Scores each anchor against the items of its row.

        Args:
            anchors: ``(B,)`` anchor ids.
            items: ``(B, M)`` item ids.

        Returns:
            ``(B, M)`` scores.
        """
        return self.geometry.pairs(self.encode_anchors(anchors), self.encode_items(items))

    def all_items(self) -> Tensor:
        """``(V, D')`` every item's point, without gradient, encoded in chunks."""
        return self._encode_all(self.item_encoder, self.vocab_size)

    def all_anchors(self) -> Tensor:
        """``(A, D')`` every anchor's point, without gradient, encoded in chunks."""
        return self._encode_all(self.anchor_encoder, self.num_anchors)

    def _encode_all(self, encoder: nn.Module, count: int) -> Tensor:
        if isinstance(encoder, EmbeddingTable):
            return encoder.weight.detach()
        tensors = itertools.chain(encoder.parameters(), encoder.buffers())
        device = next((t.device for t in tensors), torch.device("cpu"))
        return self.encode_chunked(encoder, torch.arange(count, device=device))

    def encode_chunked(self, encoder: nn.Module, ids: Tensor) -> Tensor:
        """``(N,)`` ids -> ``(N, D')`` points without gradient, ``ENCODE_CHUNK`` ids at a time."""
        with torch.no_grad():
            parts = [self._encode(encoder, part) for part in ids.split(ENCODE_CHUNK)]
        if parts:
            return torch.cat(parts)
        width = self.geometry.coordinates(self.dim)
        return torch.empty((0, width), dtype=torch.get_default_dtype(), device=ids.device)

    def score_all(
        self, anchors: Tensor, items: Tensor | None = None, item_points: Tensor | None = None
    ) -> Tensor:
        """Scores anchors against shared items (every item by default), no gradient.

        Args:
            anchors: ``(A,)`` anchor ids.
            items: ``(C,)`` item ids, or ``None`` for all ``V`` items.
            item_points: ``(C, D')`` the items' points when already encoded (evaluation
                encodes every item once per validation).

        Returns:
            ``(A, C)`` scores.
        """
        with torch.no_grad():
            left = self.encode_chunked(self.anchor_encoder, anchors)
            if item_points is None:
                if items is None:
                    item_points = self.all_items()
                else:
                    item_points = self.encode_chunked(self.item_encoder, items)
            return self.geometry.all_pairs(left, item_points)

    def can_encode_names(self) -> bool:
        """Whether the anchor encoder encodes entities by name (``encode_names``)."""
        return callable(getattr(self.anchor_encoder, "encode_names", None))

    def encode_anchor_names(self, names: Sequence[str]) -> Tensor:
        """``(N, D)`` vectors, detached, of entities the anchor encoder knows by name, ids of
        the relation or not (inductive use: held-out documents); coordinates as
        :meth:`anchor_vectors`."""
        if not self.can_encode_names():
            raise TypeError(
                f"the anchor encoder {type(self.anchor_encoder).__name__} has no "
                "encode_names(names): it encodes ids of the relation only."
            )
        encode: Any = self.anchor_encoder.encode_names
        with torch.no_grad():
            return self.geometry.to_ball(self.geometry.to_manifold(encode(names)))

    def anchor_vectors(self) -> Tensor:
        """``(A, D)`` anchor vectors, detached (Poincaré-ball coordinates for the hyperboloid)."""
        return self.geometry.to_ball(self.all_anchors())

    def item_vectors(self) -> Tensor:
        """``(V, D)`` item vectors, detached (Poincaré-ball coordinates for the hyperboloid)."""
        return self.geometry.to_ball(self.all_items())


class PairScorer:
    """The contrastive task's ``scorer`` for hard-negative samplers, no gradient.

    ``scorer(anchors (B,), candidates (B, M))`` and ``scorer.mine(anchors (A,), items (C,))``
    give the model's scores (encoders run in chunks, without gradient); candidates that
    ``is_known(anchors, items)`` flags (known positives of the anchor) score ``-inf``, so that
    mining never selects them.

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
        model = self.embeddings
        left = model.encode_chunked(model.anchor_encoder, anchors)
        right = model.encode_chunked(model.item_encoder, candidates.reshape(-1))
        with torch.no_grad():
            scores = model.geometry.pairs(left, right.view(*candidates.shape, -1))
        return self._filter(scores, anchors.unsqueeze(-1), candidates)

    def mine(self, anchors: Tensor, items: Tensor) -> Tensor:
        scores = self.embeddings.score_all(anchors, items)
        return self._filter(scores, anchors.unsqueeze(-1), items.unsqueeze(0))

    def _filter(self, scores: Tensor, anchors: Tensor, items: Tensor) -> Tensor:
        if self.is_known is None:
            return scores
        return scores.masked_fill(self.is_known(anchors, items), float("-inf"))
