"""The fused skip-gram update on a GPU: word2vec.c's per-pair SGD as one Triton launch.

The scheme follows BlazingText (Gupta & Khare 2017): each program takes one contiguous segment
of the chunk's rows (consecutive corpus positions) and trains it in order, pair after pair,
each pair's update applied before the next pair is read; programs run Hogwild against each
other. The vector of one pair is spread over the program's lanes (``BLOCK_D >= D``). The
number of real rows is read on the device (padding rows of a GPU chunk sit at its end), so
nothing waits on the host. ``TRITON_INTERPRET=1`` runs the kernel on the CPU for tests.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

ROWS_PER_PROGRAM = 32
"""Default segment length on a GPU: one program per this many rows of a chunk (checked by
``benchmarks/gpu_check.py`` against the CPU engine's quality)."""


@triton.jit
def _train_target(  # type: ignore[no-untyped-def]
    syn1, target, l1, neu1e, loss, label, scale, alpha, dim, lanes, in_dim,
    WITH_LOSS: tl.constexpr,
):
    """One target of a pair: scores ``syn1[target]`` against ``l1``, updates the output row at
    once, and returns the input row's summed gradient and the loss so far."""
    output_row = syn1 + target * dim + lanes
    l2 = tl.load(output_row, mask=in_dim, other=0.0).to(tl.float32)
    score = tl.sum(l1 * l2, axis=0)
    # σ(score) and -log σ(±score) from e = exp(-|score|): finite for any score.
    e = tl.exp(-tl.abs(score))
    sigma = tl.where(score >= 0.0, 1.0 / (1.0 + e), e / (1.0 + e))
    if WITH_LOSS:
        signed = score * (1.0 - 2.0 * label)
        loss += scale * (tl.log(1.0 + e) + tl.maximum(signed, 0.0))
    g = scale * (label - sigma) * alpha
    tl.store(output_row, (l2 + g * l1).to(syn1.dtype.element_ty), mask=in_dim)
    return neu1e + g * l2, loss


@triton.jit
def _sgns_chunk_kernel(  # type: ignore[no-untyped-def]
    syn0, syn1, centers, contexts, mask, negatives, keep, num_real, totals,
    lr_start, lr_end, lam,
    dim, num_contexts: tl.constexpr, num_negatives: tl.constexpr, BLOCK_D: tl.constexpr,
    WITH_LOSS: tl.constexpr,
):
    part = tl.program_id(0)
    parts = tl.num_programs(0)
    rows = tl.load(num_real)
    begin = part * rows // parts
    end = (part + 1) * rows // parts
    length = tl.maximum(end - begin, 1).to(tl.float32)
    lanes = tl.arange(0, BLOCK_D)
    in_dim = lanes < dim
    loss = tl.zeros([], dtype=tl.float32)
    pairs = tl.zeros([], dtype=tl.float32)
    for row in range(begin, end):
        alpha = lr_start + (lr_end - lr_start) * (row - begin).to(tl.float32) / length
        center = tl.load(centers + row).to(tl.int64)
        for column in range(num_contexts):
            if tl.load(mask + row * num_contexts + column) != 0:
                context = tl.load(contexts + row * num_contexts + column).to(tl.int64)
                input_row = syn0 + context * dim + lanes
                l1 = tl.load(input_row, mask=in_dim, other=0.0).to(tl.float32)
                neu1e = tl.zeros([BLOCK_D], dtype=tl.float32)
                neu1e, loss = _train_target(
                    syn1, center, l1, neu1e, loss, 1.0, 1.0, alpha, dim, lanes, in_dim, WITH_LOSS
                )
                for k in range(num_negatives):
                    slot = row * num_negatives + k
                    if tl.load(keep + slot) != 0:
                        target = tl.load(negatives + slot).to(tl.int64)
                        neu1e, loss = _train_target(
                            syn1, target, l1, neu1e, loss, 0.0, lam, alpha, dim, lanes, in_dim,
                            WITH_LOSS,
                        )
                # Re-read the input row: other programs may have moved it (Hogwild).
                current = tl.load(input_row, mask=in_dim, other=0.0).to(tl.float32)
                tl.store(input_row, (current + neu1e).to(syn0.dtype.element_ty), mask=in_dim)
                pairs += 1.0
    tl.store(totals + part * 2, loss.to(tl.float64))
    tl.store(totals + part * 2 + 1, pairs.to(tl.float64))


def sgns_chunk_triton(
    syn0: Tensor,
    syn1: Tensor,
    centers: Tensor,
    contexts: Tensor,
    mask: Tensor,
    negatives: Tensor,
    keep: Tensor,
    lr_start: float,
    lr_end: float,
    lam: float,
    segments: int,
    with_loss: bool,
) -> tuple[Tensor, Tensor]:
    """Launches the kernel; arguments as in
    :func:`nslightning.kernels.fused_sgns.fused_sgns_update` (checked there).

    Returns:
        ``(loss_sum, num_pairs)``, float64 scalars on the device (exact counts past 2^24
        pairs), not read back; the loss is 0 unless ``with_loss``.
    """
    num_rows = centers.shape[0]
    totals = torch.zeros(segments, 2, dtype=torch.float64, device=syn0.device)
    if num_rows == 0:
        return totals[:, 0].sum(), totals[:, 1].sum()
    # Padding rows (all pairs masked) sit after the last real row: count rows up to it.
    position = torch.arange(1, num_rows + 1, device=syn0.device)
    num_real = (mask.any(1) * position).amax().reshape(1)
    _sgns_chunk_kernel[(segments,)](
        syn0, syn1, centers.contiguous(), contexts.contiguous(), mask.contiguous(),
        negatives.contiguous(), keep.contiguous(), num_real, totals,
        float(lr_start), float(lr_end), float(lam),
        syn0.shape[1], num_contexts=contexts.shape[1], num_negatives=negatives.shape[1],
        BLOCK_D=triton.next_power_of_2(syn0.shape[1]), WITH_LOSS=with_loss, num_warps=1,
    )
    loss_sum, num_pairs = totals.sum(0)
    return loss_sum, num_pairs
