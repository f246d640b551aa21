"""A lookup table: one free vector per id, the default encoder of the contrastive task."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class EmbeddingTable(nn.Module):
    """One learned vector per id (``nn.Embedding``), uniform in ``[-init_scale, init_scale)``.

    The table is built by :meth:`configure`, which the task calls with the side's number of ids
    and the vector size, so that the same YAML works whatever the data::

        encoder = EmbeddingTable(init_scale=0.1)
        encoder.configure(num_ids=1000, dim=64)
        vectors = encoder(torch.tensor([[3, 7], [1, 2]]))   # (2, 2, 64)

    Args:
        init_scale: half-width of the uniform initialisation (``>= 0``; ``0`` starts at zero).
        sparse: sparse gradients (for SGD, SparseAdam or Adagrad on large tables); settable
            later through :attr:`sparse` (DDP over NCCL needs dense gradients).
    """

    table: nn.Embedding | None

    def __init__(self, init_scale: float = 0.1, sparse: bool = False) -> None:
        super().__init__()
        if not init_scale >= 0:
            raise ValueError(f"init_scale must be a number >= 0, got {init_scale}.")
        self.init_scale = float(init_scale)
        self._sparse = bool(sparse)
        self.table = None

    def configure(self, num_ids: int, dim: int) -> None:
        """Builds the ``(num_ids, dim)`` table, drawn from the global random generator.

        Raises:
            ValueError: ``num_ids`` or ``dim`` below 1.
        """
        if num_ids < 1 or dim < 1:
            raise ValueError(f"EmbeddingTable needs num_ids >= 1 and dim >= 1, got {num_ids} "
                             f"and {dim}.")
        self.table = nn.Embedding(num_ids, dim, sparse=self._sparse)
        with torch.no_grad():
            self.table.weight.uniform_(-self.init_scale, self.init_scale)

    def _configured(self) -> nn.Embedding:
        if self.table is None:
            raise RuntimeError(
                "EmbeddingTable is not configured: configure(num_ids, dim) must be called first "
                "(the contrastive task does it when it is built)."
            )
        return self.table

    @property
    def weight(self) -> Tensor:
        """The ``(num_ids, D)`` table."""
        return self._configured().weight

    @property
    def num_ids(self) -> int:
        return self._configured().num_embeddings

    @property
    def sparse(self) -> bool:
        """Whether the table's gradient is sparse; setting it switches the table."""
        return self._sparse

    @sparse.setter
    def sparse(self, value: bool) -> None:
        self._sparse = bool(value)
        if self.table is not None:
            self.table.sparse = self._sparse

    def forward(self, ids: Tensor) -> Tensor:
        """The vectors of ``ids``.

        Args:
            ids: ``(*,)`` long ids in ``[0, num_ids)``.

        Returns:
            ``(*, D)`` vectors.
        """
        return self._configured()(ids)

    def extra_repr(self) -> str:
        return f"init_scale={self.init_scale}, sparse={self._sparse}"
