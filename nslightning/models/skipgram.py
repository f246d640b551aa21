"""The two embedding tables of skip-gram with negative sampling."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from nslightning.models.pair_scores import pair_scores


class SkipGramEmbeddings(nn.Module):
    """Input ("syn0") and output ("syn1neg") embeddings, initialised as word2vec does.

    Input vectors start uniform in ``[-0.5/dim, 0.5/dim)``, output vectors at zero. The input
    vectors are the word vectors users keep.

    Args:
        vocab_size: number of items ``V``.
        dim: embedding dimension ``D``.
        sparse: sparse gradients (fast with SGD/SparseAdam/Adagrad on large vocabularies).
    """

    def __init__(self, vocab_size: int, dim: int, sparse: bool = True) -> None:
        super().__init__()
        if vocab_size < 1:
            raise ValueError(f"vocab_size must be >= 1, got {vocab_size}.")
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}; 100-300 is usual for word vectors.")
        self.sparse = sparse
        self.input = nn.Embedding(vocab_size, dim, sparse=sparse)
        self.output = nn.Embedding(vocab_size, dim, sparse=sparse)
        with torch.no_grad():
            self.input.weight.uniform_(-0.5 / dim, 0.5 / dim)
            self.output.weight.zero_()

    @property
    def vocab_size(self) -> int:
        return self.input.num_embeddings

    @property
    def dim(self) -> int:
        return self.input.embedding_dim

    def forward(self, anchors: Tensor, targets: Tensor) -> Tensor:
        """Scores every anchor of a row against every target of the same row.

        Args:
            anchors: ``(N, C)`` ids looked up in the input table (the context words of a center).
            targets: ``(N, T)`` ids looked up in the output table (the center, then negatives).

        Returns:
            ``(N, C, T)`` dot products.
        """
        return pair_scores(
            self.input.weight, self.output.weight, anchors, targets, sparse=self.sparse
        )

    def score(self, anchors: Tensor, candidates: Tensor) -> Tensor:
        """The current model's score of each candidate as a context of its anchor, no gradient.

        This is the ``scorer`` handed to samplers that mine hard negatives.

        Args:
            anchors: ``(B,)`` ids looked up in the input table.
            candidates: ``(B, M)`` ids looked up in the output table.

        Returns:
            ``(B, M)`` dot products.
        """
        with torch.no_grad():
            anchor_vectors = self.input.weight.index_select(0, anchors.reshape(-1))
            candidate_vectors = self.output.weight[candidates]
            return torch.bmm(candidate_vectors, anchor_vectors.unsqueeze(-1)).squeeze(-1)

    def vectors(self) -> Tensor:
        """``(V, D)`` the word vectors (input table), detached."""
        return self.input.weight.detach()
