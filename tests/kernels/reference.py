"""A plain Python reference of word2vec's per-pair SGD, in float64, one pair at a time.

Written from word2vec.c's description, independently of the kernels it checks: for each row's
real contexts in column order, the context's input vector scores the center (label 1) and then
each kept negative (label 0, gradient weighted by λ); every output vector is updated as soon as
it is scored; the input vector gets the sum of its gradients at the end of the pair.
"""

from __future__ import annotations

import numpy as np


def reference_sgns_chunk(
    syn0: np.ndarray,
    syn1: np.ndarray,
    centers: np.ndarray,
    contexts: np.ndarray,
    mask: np.ndarray,
    negatives: np.ndarray,
    keep: np.ndarray,
    lr_start: float,
    lr_end: float,
    lam: float = 1.0,
    segments: int = 1,
    num_rows: int | None = None,
) -> tuple[float, int]:
    """Trains ``syn0``/``syn1`` (float64 arrays) in place.

    The first ``num_rows`` rows (all by default) are cut into ``segments`` contiguous parts,
    trained one after the other; the learning rate falls linearly over each part's rows.

    Returns:
        ``(summed loss, number of pairs)``.
    """
    rows = len(centers) if num_rows is None else num_rows
    total_loss, pairs = 0.0, 0
    for part in range(segments):
        begin, end = part * rows // segments, (part + 1) * rows // segments
        for row in range(begin, end):
            alpha = lr_start + (lr_end - lr_start) * (row - begin) / max(end - begin, 1)
            targets = [(int(centers[row]), 1.0, 1.0)] + [
                (int(negatives[row, k]), 0.0, lam)
                for k in range(negatives.shape[1])
                if keep[row, k]
            ]
            for column in range(contexts.shape[1]):
                if not mask[row, column]:
                    continue
                context = int(contexts[row, column])
                input_gradient = np.zeros(syn0.shape[1])
                for target, label, weight in targets:
                    score = float(syn0[context] @ syn1[target])
                    probability = 1.0 / (1.0 + np.exp(-score))
                    # -log σ(s) for the center, -log σ(-s) = -log(1 - σ(s)) for a negative
                    total_loss += weight * float(np.logaddexp(0.0, -score if label else score))
                    step = weight * (label - probability) * alpha
                    input_gradient += step * syn1[target]
                    syn1[target] += step * syn0[context]
                syn0[context] += input_gradient
                pairs += 1
    return total_loss, pairs
