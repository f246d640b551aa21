"""Walker/Vose alias tables: exact O(1) draws from a discrete distribution."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def build_alias_table(probs: Tensor) -> tuple[Tensor, Tensor]:
    """Builds Vose's alias table for ``probs``.

    A draw picks a column ``i`` uniformly, then keeps ``i`` with probability ``accept[i]`` or
    takes ``alias[i]`` otherwise; the result is distributed exactly as ``probs``, up to the
    rounding of ``accept`` (float64 here; samplers store it as float32, a relative error of
    about 1e-7 per item).

    Args:
        probs: ``(V,)`` non-negative weights with a positive sum (normalised here).

    Returns:
        ``accept`` ``(V,)`` float64 in ``[0, 1]`` and ``alias`` ``(V,)`` int64.
    """
    p = probs.detach().to(torch.float64).cpu().numpy()
    num = p.size
    scaled = p * (num / p.sum())
    accept = np.ones(num, dtype=np.float64)
    alias = np.arange(num, dtype=np.int64)
    small = [int(i) for i in np.flatnonzero(scaled < 1.0)]
    large = [int(i) for i in np.flatnonzero(scaled >= 1.0)]
    while small and large:
        s, g = small.pop(), large.pop()
        accept[s] = scaled[s]
        alias[s] = g
        scaled[g] = (scaled[g] + scaled[s]) - 1.0
        (small if scaled[g] < 1.0 else large).append(g)
    # Whatever is left is 1 up to rounding: it keeps itself.
    return torch.from_numpy(accept), torch.from_numpy(alias)


def draw_from_alias(
    accept: Tensor, alias: Tensor, shape: tuple[int, ...], generator: torch.Generator
) -> Tensor:
    """Draws ids of ``shape`` from an alias table, on the table's device.

    Args:
        accept: ``(V,)`` float acceptance thresholds.
        alias: ``(V,)`` long alternatives.
        shape: output shape.
        generator: a generator on ``accept.device``.

    Returns:
        ``shape`` long ids.
    """
    num = 1
    for size in shape:
        num *= size
    columns = torch.randint(
        accept.numel(), (num,), device=accept.device, generator=generator, dtype=torch.int64
    )
    coins = torch.rand((num,), device=accept.device, generator=generator, dtype=accept.dtype)
    keep = coins < accept.index_select(0, columns)
    alternatives = alias.index_select(0, columns)
    return torch.where(keep, columns, alternatives, out=alternatives).view(shape)
