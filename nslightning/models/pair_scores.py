"""Scores of anchor rows against target rows, with a backward that yields sparse row gradients."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx


def _row_gradient(shape: torch.Size, ids: Tensor, rows: Tensor, sparse: bool) -> Tensor:
    """The gradient of a ``shape`` table that adds ``rows (M, D)`` at ``ids (M,)``."""
    if sparse:
        return torch.sparse_coo_tensor(
            ids.unsqueeze(0), rows, shape, is_coalesced=False, check_invariants=False
        )
    return rows.new_zeros(shape).index_add_(0, ids, rows)


class _PairScores(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: FunctionCtx,
        input_weight: Tensor,
        output_weight: Tensor,
        anchors: Tensor,
        targets: Tensor,
        sparse: bool,
    ) -> Tensor:
        anchor_vectors = input_weight[anchors]  # (N, C, D)
        target_vectors = output_weight[targets]  # (N, T, D)
        ctx.save_for_backward(anchors, targets, anchor_vectors, target_vectors)
        ctx.sparse = sparse  # type: ignore[attr-defined]
        ctx.shapes = (input_weight.shape, output_weight.shape)  # type: ignore[attr-defined]
        return torch.bmm(anchor_vectors, target_vectors.transpose(1, 2))

    @staticmethod
    def backward(ctx: Any, grad_scores: Tensor) -> tuple[Tensor | None, ...]:
        anchors, targets, anchor_vectors, target_vectors = ctx.saved_tensors
        grad_scores = grad_scores.to(anchor_vectors.dtype)  # backward outside autocast
        dim = anchor_vectors.shape[-1]
        grad_input = grad_output = None
        if ctx.needs_input_grad[0]:
            rows = torch.bmm(grad_scores, target_vectors).reshape(-1, dim)
            grad_input = _row_gradient(ctx.shapes[0], anchors.reshape(-1), rows, ctx.sparse)
        if ctx.needs_input_grad[1]:
            rows = torch.bmm(grad_scores.transpose(1, 2), anchor_vectors).reshape(-1, dim)
            grad_output = _row_gradient(ctx.shapes[1], targets.reshape(-1), rows, ctx.sparse)
        return grad_input, grad_output, None, None, None


def pair_scores(
    input_weight: Tensor,
    output_weight: Tensor,
    anchors: Tensor,
    targets: Tensor,
    sparse: bool = True,
) -> Tensor:
    """Dot products of each row's anchors with the same row's targets.

    Equivalent to ``bmm(input_weight[anchors], output_weight[targets].transpose(1, 2))`` but its
    backward writes the row gradients directly (two ``bmm`` and, with ``sparse=True``, an
    uncoalesced sparse COO gradient), which is what makes a skip-gram step cheap on the CPU.

    Args:
        input_weight: ``(V, D)`` anchor embedding table.
        output_weight: ``(V, D)`` target embedding table.
        anchors: ``(N, C)`` long ids into ``input_weight``.
        targets: ``(N, T)`` long ids into ``output_weight``.
        sparse: return sparse (COO, uncoalesced) gradients for the tables.

    Returns:
        ``(N, C, T)`` scores.
    """
    result: Tensor = _PairScores.apply(input_weight, output_weight, anchors, targets, sparse)
    return result
