"""Counting ids in a batch, a queue or a row: the ``log_q`` of batch-based samplers, repeats."""

from __future__ import annotations

import torch
from torch import Tensor


def count_in(ids: Tensor, population: Tensor) -> Tensor:
    """How many entries of ``population`` equal each id, by sort and binary search (no
    ``bincount``, whose size would be read back from an accelerator).

    Args:
        ids: ``(*)`` long ids to look up.
        population: ``(P,)`` long ids.

    Returns:
        ``(*)`` long counts.
    """
    ordered = population.sort().values
    flat = ids.reshape(-1)
    count = torch.searchsorted(ordered, flat, right=True) - torch.searchsorted(ordered, flat)
    return count.view(ids.shape)


def log_frequency(ids: Tensor, population: Tensor, size: Tensor | int) -> Tensor:
    """``log(count of each id in population / size)``; ``-inf`` for ids absent from it.

    Args:
        ids: ``(*)`` long ids to look up.
        population: ``(P,)`` long ids (entries ``< 0`` are empty slots and never match).
        size: number of real entries in ``population`` (a scalar tensor or an int).

    Returns:
        ``(*)`` float32.
    """
    size_tensor = torch.as_tensor(size, device=ids.device, dtype=torch.float32).clamp_min(1.0)
    return (count_in(ids, population).float() / size_tensor).log()


def repeated_in_row(candidates: Tensor) -> Tensor:
    """``(R, P)`` bool: ``True`` for every occurrence of a value after its first in the row."""
    values, order = candidates.sort(dim=1, stable=True)
    repeat_sorted = torch.zeros_like(values, dtype=torch.bool)
    repeat_sorted[:, 1:] = values[:, 1:] == values[:, :-1]
    return torch.empty_like(repeat_sorted).scatter_(1, order, repeat_sorted)
