"""An LSTM language model in plain torch: embedding, n-layer LSTM, dropout, output vectors."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nslightning.deprecation import warn_renamed

Hidden = tuple[Tensor, Tensor]
"""``(h, c)``: ``(layers, B, D_out)`` and ``(layers, B, H)``, as ``nn.LSTM`` keeps them."""

EVAL_CHUNK_ELEMENTS = 1 << 24  # logits held at once by nll(): 64 MiB of float32


class LSTMLanguageModel(nn.Module):
    """Predicts the next token: ``s_w(h_t) = h_t · W_w + b_w`` from an LSTM's output ``h_t``.

    Dropout (Zaremba et al. 2014) is applied to the embeddings, between LSTM layers and to the
    LSTM's output. With ``tie_weights`` the output vectors ``W`` are the input embeddings
    (Press & Wolf 2017; Inan et al. 2017); when ``hidden_size`` differs from ``dim``
    the last LSTM layer projects its output to ``dim`` (an LSTMP, Sak et al. 2014) so
    that the tie still fits.

    Args:
        vocab_size: ``V``.
        dim: ``E``, the input vector size.
        hidden_size: ``H``, the LSTM's state size.
        num_layers: stacked LSTM layers.
        dropout: dropout probability.
        tie_weights: output vectors are the input embeddings.
        init_scale: embeddings (and untied output vectors) start uniform in
            ``[-init_scale, init_scale)``; output biases start at 0.
    """

    def __init__(
        self,
        vocab_size: int,
        dim: int = 256,
        hidden_size: int = 256,
        num_layers: int = 2,
        dropout: float = 0.2,
        tie_weights: bool = True,
        init_scale: float = 0.1,
        embedding_dim: int | None = None,
    ) -> None:
        super().__init__()
        if embedding_dim is not None:
            warn_renamed("LSTMLanguageModel", "embedding_dim", "dim")
            dim = embedding_dim
        if vocab_size < 2:
            raise ValueError(f"vocab_size must be >= 2, got {vocab_size}.")
        if min(dim, hidden_size, num_layers) < 1:
            raise ValueError(
                "dim, hidden_size and num_layers must be >= 1, got "
                f"{dim}, {hidden_size} and {num_layers}."
            )
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}.")
        projection = dim if tie_weights and hidden_size != dim else 0
        if projection and hidden_size < dim:
            raise ValueError(
                f"tie_weights with hidden_size={hidden_size} < dim={dim}: the "
                "LSTM's output is projected down to the embedding size, which needs "
                "hidden_size > dim; raise hidden_size, lower dim, or set "
                "tie_weights false."
            )
        self.vocab_size = vocab_size
        self.output_dim = projection or hidden_size
        self.embedding = nn.Embedding(vocab_size, dim)
        self.lstm = nn.LSTM(
            dim,
            hidden_size,
            num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
            proj_size=projection,
        )
        self.dropout = nn.Dropout(dropout)
        nn.init.uniform_(self.embedding.weight, -init_scale, init_scale)
        if tie_weights:
            self.output_weight = self.embedding.weight
        else:
            self.output_weight = nn.Parameter(
                torch.empty(vocab_size, self.output_dim).uniform_(-init_scale, init_scale)
            )
        self.output_bias = nn.Parameter(torch.zeros(vocab_size))

    @property
    def tied(self) -> bool:
        return self.output_weight is self.embedding.weight

    def forward(self, tokens: Tensor, hidden: Hidden | None = None) -> tuple[Tensor, Hidden]:
        """Runs the LSTM over a window.

        Args:
            tokens: ``(B, T)`` long input ids.
            hidden: the state after the previous window of the same ``B`` streams, or ``None``
                (zeros).

        Returns:
            ``features (B, T, D)`` (the dropped-out LSTM outputs that the output layer scores)
            and the state after the window.
        """
        embedded = self.dropout(self.embedding(tokens))
        outputs, hidden = self.lstm(embedded, hidden)
        return self.dropout(outputs), hidden

    def logits(self, features: Tensor) -> Tensor:
        """``(*, V)`` scores of every token for ``features (*, D)``."""
        return F.linear(features, self.output_weight, self.output_bias)

    def score(self, features: Tensor, ids: Tensor) -> Tensor:
        """Scores of candidate tokens.

        Args:
            features: ``(N, D)``.
            ids: ``(K,)`` candidates shared by every row (one matrix product), or ``(N, K)``
                candidates per row (a batched product over gathered vectors: ``N K D`` memory).

        Returns:
            ``(N, K)``.
        """
        if ids.dim() == 1:
            return F.linear(features, self.output_weight[ids], self.output_bias[ids])
        vectors = self.output_weight[ids]  # (N, K, D)
        return torch.bmm(vectors, features.unsqueeze(-1)).squeeze(-1) + self.output_bias[ids]

    def nll(self, features: Tensor, targets: Tensor) -> Tensor:
        """Exact full-softmax negative log-likelihood of each target.

        Rows are processed in chunks of at most ``2^24 / V`` so that the ``(N, V)`` logits
        never exist at once.

        Args:
            features: ``(N, D)``.
            targets: ``(N,)`` long.

        Returns:
            ``(N,)`` float32 ``-log softmax(logits)[target]``.
        """
        rows = max(1, EVAL_CHUNK_ELEMENTS // self.vocab_size)
        parts = [
            F.cross_entropy(
                self.logits(features[start : start + rows]).float(),
                targets[start : start + rows],
                reduction="none",
            )
            for start in range(0, features.shape[0], rows)
        ]
        return torch.cat(parts) if parts else features.new_empty(0)


def detach_hidden(hidden: Hidden | None) -> Hidden | None:
    """The state without its graph: truncated back-propagation through time."""
    if hidden is None:
        return None
    return hidden[0].detach(), hidden[1].detach()
