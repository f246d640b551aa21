"""One fused skip-gram update per chunk, on whichever device holds the tables."""

from __future__ import annotations

import torch
from torch import Tensor

from nslightning.samplers.base import check_id_range


def fused_sgns_update(
    syn0: Tensor,
    syn1: Tensor,
    centers: Tensor,
    contexts: Tensor,
    mask: Tensor,
    negatives: Tensor,
    keep: Tensor,
    lr_start: float,
    lr_end: float,
    *,
    lam: float = 1.0,
    segments: int | None = None,
    with_loss: bool = True,
) -> tuple[Tensor | None, Tensor]:
    """Trains a chunk of skip-gram windows in place with word2vec's per-pair SGD.

    For every row ``i`` and every real context ``c`` of it (in column order), the pair
    ``(c, center_i)`` is trained before the next pair is read::

        neu1e = 0
        for t in (center_i, negatives[i, k] where keep[i, k]):
            g = alpha * w_t * (label_t - σ(syn0[c] · syn1[t]))   # label 1 for the center, else 0
            neu1e += g * syn1[t];  syn1[t] += g * syn0[c]
        syn0[c] += neu1e

    with ``w_t = 1`` for the center and ``lam`` for negatives (word2vec.c's loop, with an exact
    sigmoid instead of its clipped table). The rows are split into ``segments`` contiguous parts
    trained in parallel without locks (Hogwild: numba threads on the CPU, Triton programs on a
    GPU); within a part, ``alpha`` falls linearly from ``lr_start`` at its first row towards
    ``lr_end``. Nothing is read back to the host on a GPU.

    Args:
        syn0: ``(V, D)`` float32 input vectors (contiguous), updated in place.
        syn1: ``(V, D)`` float32 output vectors (same device), updated in place.
        centers: ``(N,)`` integer center ids.
        contexts: ``(N, C)`` integer context ids.
        mask: ``(N, C)`` bool, ``True`` for a real pair.
        negatives: ``(N, K)`` integer negatives of each center, shared by its window.
        keep: ``(N, K)`` bool, ``False`` skips a negative (an accidental hit, an empty slot).
        lr_start: learning rate at the start of the chunk.
        lr_end: learning rate at its end.
        lam: weight ``λ >= 0`` of the negatives' gradient; ``1`` is SGNS.
        segments: parts trained in parallel; ``None``: numba's thread count on the CPU (see
            :func:`~nslightning.kernels.sgns_numba.set_threads`), one Triton program per
            ``ROWS_PER_PROGRAM`` rows on a GPU.
        with_loss: also sum the loss (costs about a fifth of the kernel's time).

    Returns:
        ``(loss_sum, num_pairs)``: float64 scalars on the tables' device; ``loss_sum`` is
        ``-log σ(s+) - λ Σ_k log σ(-s_k)`` summed over the pairs, each scored just before its
        update, or ``None`` without ``with_loss``.
    """
    _check_inputs(syn0, syn1, centers, contexts, mask, negatives, keep, lam, segments)
    if syn0.device.type == "cpu":
        from nslightning.kernels.sgns_numba import numba_threads, sgns_chunk_numba

        segments = segments or numba_threads()
        totals = torch.zeros(segments, 2, dtype=torch.float64)
        if centers.shape[0]:
            sgns_chunk_numba(
                syn0.detach().numpy(), syn1.detach().numpy(),
                centers.long().numpy(), contexts.long().numpy(), mask.numpy(),
                negatives.long().numpy(), keep.numpy(),
                float(lr_start), float(lr_end), float(lam), int(segments), bool(with_loss),
                totals.numpy(),
            )
        loss_sum, num_pairs = totals.sum(0)
    elif syn0.device.type == "cuda":
        from nslightning.kernels.sgns_triton import ROWS_PER_PROGRAM, sgns_chunk_triton

        segments = segments or max(1, -(-centers.shape[0] // ROWS_PER_PROGRAM))
        loss_sum, num_pairs = sgns_chunk_triton(
            syn0.detach(), syn1.detach(), centers, contexts, mask, negatives, keep,
            lr_start, lr_end, lam, segments, with_loss,
        )
    else:
        raise RuntimeError(
            f"the fused skip-gram engine runs on CPU and CUDA tables, not {syn0.device.type}; "
            "use engine: autograd there."
        )
    return (loss_sum if with_loss else None), num_pairs


def _check_inputs(
    syn0: Tensor,
    syn1: Tensor,
    centers: Tensor,
    contexts: Tensor,
    mask: Tensor,
    negatives: Tensor,
    keep: Tensor,
    lam: float,
    segments: int | None,
) -> None:
    """Checks shapes, dtypes, devices and (on the CPU, where it is free) id ranges."""
    for name, table in (("syn0", syn0), ("syn1", syn1)):
        if table.dim() != 2 or table.dtype != torch.float32 or not table.is_contiguous():
            raise ValueError(
                f"the fused engine needs contiguous float32 (V, D) tables, got {name} "
                f"{tuple(table.shape)} {table.dtype}; use engine: autograd for other precisions."
            )
    if syn0.shape != syn1.shape or syn0.device != syn1.device:
        raise ValueError(
            f"syn0 and syn1 must match: {tuple(syn0.shape)} on {syn0.device} and "
            f"{tuple(syn1.shape)} on {syn1.device}."
        )
    num_rows = centers.shape[0]
    expected = {
        "centers": (num_rows,),
        "contexts": (num_rows, contexts.shape[-1]),
        "mask": (num_rows, contexts.shape[-1]),
        "negatives": (num_rows, negatives.shape[-1]),
        "keep": (num_rows, negatives.shape[-1]),
    }
    given = {"centers": centers, "contexts": contexts, "mask": mask, "negatives": negatives,
             "keep": keep}
    for name, tensor in given.items():
        if tuple(tensor.shape) != expected[name]:
            raise ValueError(
                f"{name} must have shape {expected[name]} for {num_rows} centers (contexts "
                f"(N, C), negatives (N, K), mask and keep alike), got {tuple(tensor.shape)}."
            )
        if tensor.device != syn0.device:
            raise RuntimeError(f"{name} is on {tensor.device}, the tables on {syn0.device}.")
        if (name in ("mask", "keep")) != (tensor.dtype == torch.bool):
            raise TypeError(f"{name} has dtype {tensor.dtype}: mask and keep are bool, ids int.")
    if not lam >= 0:
        raise ValueError(f"lam (λ) must be >= 0, got {lam}; 1 is SGNS.")
    if segments is not None and segments < 1:
        raise ValueError(f"segments must be >= 1, got {segments}.")
    vocab = syn0.shape[0]
    fix = "the ids must come from the vocabulary the tables were built for."
    check_id_range(centers, 0, vocab, "center id", fix)
    for name, ids, used in (("context id", contexts, mask), ("negative id", negatives, keep)):
        if ids.device.type == "cpu" and ids.numel():
            low, high = torch.aminmax(ids)  # one pass; the masked check only if it fails
            if low < 0 or high >= vocab:
                check_id_range(ids[used], 0, vocab, name, fix)
