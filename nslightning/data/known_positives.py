"""The known positives of every anchor, for filtering negatives and ranking metrics."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class KnownPositives(nn.Module):
    """A set of ``(anchor, item)`` pairs, queried on the device without host syncs.

    Pairs are kept twice, as buffers that move with ``.to(device)`` (not saved in checkpoints:
    the data rebuilds them): sorted int64 keys ``anchor * num_items + item`` for membership
    tests (binary search), and rows ``offsets``/``members`` (CSR, int32 items sorted per anchor)
    to list an anchor's items: 12 bytes per pair.

    Args:
        anchors: ``(P,)`` anchor ids in ``[0, num_anchors)``, any integer dtype.
        items: ``(P,)`` item ids in ``[0, num_items)``; duplicate pairs are merged.
        num_anchors: number of anchor ids.
        num_items: number of item ids.
    """

    keys: Tensor
    offsets: Tensor
    members: Tensor

    def __init__(self, anchors: Tensor, items: Tensor, num_anchors: int, num_items: int) -> None:
        super().__init__()
        anchors, items = anchors.long().cpu(), items.long().cpu()
        if anchors.shape != items.shape or anchors.dim() != 1:
            raise ValueError("KnownPositives: anchors and items must be 1-D and of equal length.")
        self.num_anchors, self.num_items = num_anchors, num_items
        keys = torch.unique(anchors * num_items + items)  # sorted: by anchor, then item
        self.register_buffer("keys", keys, persistent=False)
        counts = torch.bincount(keys // num_items, minlength=num_anchors)
        offsets = torch.zeros(num_anchors + 1, dtype=torch.int64)
        offsets[1:] = counts.cumsum(0)
        self.register_buffer("offsets", offsets, persistent=False)
        self.register_buffer("members", (keys % num_items).int(), persistent=False)
        self.max_degree = int(counts.max()) if num_anchors else 0

    def __len__(self) -> int:
        return int(self.keys.numel())

    def contains(self, anchors: Tensor, items: Tensor) -> Tensor:
        """``True`` where ``(anchor, item)`` is a known pair.

        Args:
            anchors: ids, broadcastable against ``items`` (e.g. ``(B, 1)`` against ``(B, K)``).
            items: ids; negative ids (padding) are never known.

        Returns:
            bool of the broadcast shape.
        """
        keys = anchors.long() * self.num_items + items.long()
        if self.keys.numel() == 0:
            return torch.zeros_like(keys, dtype=torch.bool)
        position = torch.searchsorted(self.keys, keys.reshape(-1)).clamp_max(self.keys.numel() - 1)
        found = (self.keys[position] == keys.reshape(-1)).reshape(keys.shape)
        return found & (items >= 0)

    def degree(self, anchors: Tensor) -> Tensor:
        """Number of known items of each anchor (same shape as ``anchors``)."""
        anchors = anchors.long()
        return self.offsets[anchors + 1] - self.offsets[anchors]

    def anchors_with_items(self) -> Tensor:
        """``(A',)`` the ids of the anchors that have at least one known item, ascending."""
        return torch.nonzero(self.offsets[1:] > self.offsets[:-1]).squeeze(1)

    def padded(self, anchors: Tensor, width: int) -> Tensor:
        """Up to ``width`` known items of each anchor (the lowest ids), ``-1`` pads.

        Args:
            anchors: ``(*)`` ids.
            width: columns of the result.

        Returns:
            ``(*, width)`` long.
        """
        start = self.offsets[anchors.long()].unsqueeze(-1)
        position = start + torch.arange(width, device=start.device)
        inside = position < (start + self.degree(anchors).unsqueeze(-1))
        safe = position.clamp_max(max(self.members.numel() - 1, 0))
        if self.members.numel() == 0:
            return torch.full_like(position, -1)
        return torch.where(inside, self.members[safe].long(), -1)

    def extra_repr(self) -> str:
        return f"pairs={len(self)}, num_anchors={self.num_anchors}, num_items={self.num_items}"
