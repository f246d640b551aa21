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

    def use_sparse_gradients(self, sparse: bool) -> None:
        """Switches the tables between sparse and dense gradients (DDP over NCCL needs dense)."""
        self.sparse = sparse
        self.input.sparse = self.output.sparse = sparse

    def sparse_parameters(self) -> list[Tensor]:
        """Both tables while their gradients are sparse."""
        return [self.input.weight, self.output.weight] if self.sparse else []

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

    def window_scores(self, contexts: Tensor, mask: Tensor, candidates: Tensor) -> Tensor:
        """How strongly each candidate is predicted by a row's window, no gradient.

        A negative replaces the center, so the loss scores it against every context word of
        the row: the mean of those scores, ``mean_c input[c] . output[candidate]``, is how hard
        the candidate is for that row.

        Args:
            contexts: ``(n, 2W)`` context ids.
            mask: ``(n, 2W)`` bool, real contexts.
            candidates: ``(n, M)`` ids.

        Returns:
            ``(n, M)`` scores.
        """
        with torch.no_grad():
            weight = mask.to(self.input.weight.dtype).unsqueeze(-1)  # (n, 2W, 1)
            window = (self.input.weight[contexts] * weight).sum(1) / weight.sum(1).clamp_min(1.0)
            return torch.bmm(self.output.weight[candidates], window.unsqueeze(-1)).squeeze(-1)

    def context_scores(self, anchors: Tensor, items: Tensor) -> Tensor:
        """``input[anchor] . output[item]`` for every pair, no gradient: ``(A,)``, ``(C,)`` ->
        ``(A, C)``.

        The model's score of each item as a context of the anchor: what hard-negative mining
        over the whole vocabulary ranks by, before the window re-scores the pool. (Ranking the
        whole vocabulary by similarity to the center's output vector instead selects the
        center's substitutes, which are false negatives: on the bundled corpus it made WS353
        negative.)
        """
        with torch.no_grad():
            inputs = self.input.weight.index_select(0, anchors)
            return inputs @ self.output.weight.index_select(0, items).T

    def vectors(self) -> Tensor:
        """``(V, D)`` the word vectors (input table), detached."""
        return self.input.weight.detach()


class WindowScorer:
    """The skip-gram task's ``scorer`` for one update: candidates scored against each row.

    ``scorer(anchors (n,), candidates (n, M))`` scores the candidates of row ``i`` against row
    ``i``'s window (the anchors, the centers, only name the rows); ``scorer.mine(anchors (A,),
    items (C,))`` scores any center ids against shared items (see
    :meth:`SkipGramEmbeddings.context_scores`) for hard-negative mining over the vocabulary.
    """

    def __init__(self, embeddings: SkipGramEmbeddings, contexts: Tensor, mask: Tensor) -> None:
        self.embeddings = embeddings
        self.contexts = contexts
        self.mask = mask

    def __call__(self, anchors: Tensor, candidates: Tensor) -> Tensor:
        if candidates.shape[0] != self.contexts.shape[0]:
            raise ValueError(
                f"the skip-gram scorer scores the {self.contexts.shape[0]} rows of the current "
                f"update, got candidates for {candidates.shape[0]} rows."
            )
        return self.embeddings.window_scores(self.contexts, self.mask, candidates)

    def mine(self, anchors: Tensor, items: Tensor) -> Tensor:
        return self.embeddings.context_scores(anchors, items)
