"""The fused skip-gram update on the CPU: word2vec.c's per-pair SGD, compiled with numba.

One call trains a whole chunk. The chunk's rows are split into ``segments`` contiguous parts;
numba's threads take the parts in parallel (Hogwild: the tables are shared and updated without
locks, as in word2vec.c), and each part is trained row after row, pair after pair, every pair's
gradient applied before the next pair is read. With one thread the parts run one after the
other, in order, so a run is bit-identical when repeated.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import numba
import numpy as np
import torch
from numba import njit, prange

ONE = np.float32(1.0)
ZERO = np.float32(0.0)


@njit(nogil=True, cache=True, fastmath=True, inline="always")
def _train_target(l1, l2, neu1e, label, scale, alpha, with_loss):  # type: ignore[no-untyped-def]
    """One target of a pair, in float32: scores the output row ``l2`` against the input row
    ``l1``, updates ``l2`` at once and adds the input row's gradient to ``neu1e``.

    Returns:
        The target's loss ``-scale * log σ(±score)`` (0 unless ``with_loss``).
    """
    score = ZERO
    for d in range(l1.shape[0]):
        score += l1[d] * l2[d]
    # σ(score) and -log σ(±score) from e = exp(-|score|): finite for any score.
    e = math.exp(-abs(score))
    sigma = ONE / (ONE + e) if score >= ZERO else e / (ONE + e)
    loss = ZERO
    if with_loss:
        signed = score if label == ZERO else -score
        loss = scale * (math.log1p(e) + max(signed, ZERO))
    g = scale * (label - sigma) * alpha
    for d in range(l1.shape[0]):
        old = l2[d]
        neu1e[d] += g * old
        l2[d] = old + g * l1[d]
    return loss


@njit(parallel=True, nogil=True, cache=True, fastmath=True)
def sgns_chunk_numba(  # type: ignore[no-untyped-def]
    syn0, syn1, centers, contexts, mask, negatives, keep, lr_start, lr_end, lam, segments,
    with_loss, totals,
):
    """Trains a chunk in place; see :func:`nslightning.kernels.fused_sgns.fused_sgns_update`.

    Args:
        syn0: ``(V, D)`` float32 input vectors, updated in place.
        syn1: ``(V, D)`` float32 output vectors, updated in place.
        centers: ``(N,)`` int64 center ids.
        contexts: ``(N, C)`` int64 context ids.
        mask: ``(N, C)`` bool, real pairs.
        negatives: ``(N, K)`` int64 negatives of each center, shared by its window.
        keep: ``(N, K)`` bool, ``False`` skips a negative (an accidental hit).
        lr_start: learning rate at the first row of each segment.
        lr_end: learning rate the segment decays towards, linearly by row.
        lam: weight of the negatives' gradient (1 is SGNS).
        segments: parts of the chunk trained in parallel.
        with_loss: also sum the pairs' losses (about a fifth of the time).
        totals: ``(segments, 2)`` float64 output: each segment's loss sum and pair count.
    """
    num_rows = centers.shape[0]
    dim = syn0.shape[1]
    weight = np.float32(lam)
    for part in prange(segments):
        begin = part * num_rows // segments
        end = (part + 1) * num_rows // segments
        length = max(end - begin, 1)
        neu1e = np.empty(dim, dtype=np.float32)
        loss = 0.0
        pairs = 0
        for row in range(begin, end):
            alpha = np.float32(lr_start + (lr_end - lr_start) * (row - begin) / length)
            output_center = syn1[centers[row]]
            for column in range(contexts.shape[1]):
                if not mask[row, column]:
                    continue
                l1 = syn0[contexts[row, column]]
                neu1e[:] = ZERO
                loss += _train_target(l1, output_center, neu1e, ONE, ONE, alpha, with_loss)
                for k in range(negatives.shape[1]):
                    if keep[row, k]:
                        loss += _train_target(
                            l1, syn1[negatives[row, k]], neu1e, ZERO, weight, alpha, with_loss
                        )
                for d in range(dim):
                    l1[d] += neu1e[d]
                pairs += 1
        totals[part, 0] = loss
        totals[part, 1] = pairs


def load_kernel() -> None:
    """Compiles the kernel, or loads it from numba's disk cache, for the task's types (float32
    tables, int64 ids, bool masks) on a one-pair chunk, so that no training step waits for it."""
    tables = np.zeros((2, 1), dtype=np.float32)
    ids = np.zeros((1, 1), dtype=np.int64)
    flags = np.zeros((1, 1), dtype=np.bool_)
    sgns_chunk_numba(
        tables, tables.copy(), ids[0], ids, flags, ids, flags, 0.0, 0.0, 1.0, 1, True,
        np.zeros((1, 2)),
    )


def set_threads(threads: int) -> int:
    """Sets numba's thread count for this thread (capped at what numba started); returns it."""
    started: int = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]
    threads = max(1, min(int(threads), started))
    with _torch_threads_kept():
        numba.set_num_threads(threads)
    return threads


def numba_threads() -> int:
    """The thread count numba's parallel loops use in this thread."""
    with _torch_threads_kept():
        return int(numba.get_num_threads())


@contextmanager
def _torch_threads_kept() -> Iterator[None]:
    """Puts torch's thread count back as it was: numba's OpenMP layer resets the OpenMP thread
    count of the calling thread, which is torch's too, when it starts its pool."""
    before = torch.get_num_threads()
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
