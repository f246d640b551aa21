"""The negative-sampler interface shared by every task.

A sampler is an ``nn.Module`` so that its tables (buffers) move with ``.to(device)`` and are saved
in checkpoints. It owns its random generator, seeded with ``seed + rank`` so that distributed
ranks draw different negatives and a run is reproducible under a seed.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from nslightning.random_stream import RandomStream

Scorer = Callable[[Tensor, Tensor], Tensor]
"""``scorer(anchors (B,), candidates (B, M)) -> scores (B, M)``, supplied by a task."""


@dataclass
class Negatives:
    """Negatives drawn for a tensor of positives.

    Attributes:
        ids: ``(*, K)`` long, the drawn candidate ids.
        log_q: ``(*, K)`` float, log probability of each draw under the sampler (for logQ
            correction), or ``None`` when the sampler cannot provide it.
        mask: ``(*, K)`` bool, ``False`` where a draw is an accidental hit (equals the positive).
    """

    ids: Tensor
    log_q: Tensor | None
    mask: Tensor


class NegativeSampler(nn.Module, ABC):
    """Base class: validates input, owns the generator, delegates drawing to :meth:`_draw`.

    Args:
        seed: base seed of the sampler's generator; rank ``r`` uses ``seed + r``.
    """

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.stream = RandomStream(seed)
        self.num_items = 0

    # ------------------------------------------------------------------ public interface
    def setup(self, counts: Tensor) -> None:
        """Builds the sampler's tables from item frequencies.

        Args:
            counts: ``(V,)`` non-negative frequencies of the ``V`` items (token counts).
        """
        counts = torch.as_tensor(counts)
        if counts.dim() != 1 or counts.numel() == 0:
            raise ValueError(
                f"{type(self).__name__}.setup expects a non-empty 1-D tensor of counts, got shape "
                f"{tuple(counts.shape)}; pass one count per vocabulary item."
            )
        counts = counts.to(torch.float64)
        if not torch.isfinite(counts).all() or (counts < 0).any():
            raise ValueError(
                f"{type(self).__name__}.setup: counts must be finite and >= 0; "
                "check the vocabulary counts you passed."
            )
        self.num_items = int(counts.numel())
        self._setup(counts)

    @property
    def seed(self) -> int:
        return self.stream.seed

    @property
    def rank(self) -> int:
        return self.stream.rank

    def manual_seed(self, seed: int) -> None:
        """Re-seeds the generator with ``seed + rank``; the next draw starts afresh."""
        self.stream.manual_seed(seed)

    def set_rank(self, rank: int) -> None:
        """Sets the distributed rank: the generator is re-seeded with ``seed + rank``."""
        self.stream.set_rank(rank)

    def sample(
        self,
        positives: Tensor,
        num_negatives: int,
        *,
        anchors: Tensor | None = None,
        scorer: Scorer | None = None,
    ) -> Negatives:
        """Draws ``num_negatives`` negatives for every positive.

        Args:
            positives: ``(*)`` long ids of the positives (the items the negatives stand in for).
            num_negatives: ``K >= 1``.
            anchors: ``(*)`` long ids of the anchors, for samplers that condition on them.
            scorer: scores candidates for anchors, for samplers that mine hard negatives.

        Returns:
            :class:`Negatives` with ``ids``, ``log_q`` and ``mask`` of shape ``(*, K)``.
        """
        if isinstance(num_negatives, bool) or not isinstance(num_negatives, int):
            raise TypeError(f"num_negatives must be an int, got {num_negatives!r}.")
        if num_negatives < 1:
            raise ValueError(f"num_negatives must be >= 1, got {num_negatives}; use K >= 1.")
        if self.num_items == 0:
            raise RuntimeError(
                f"{type(self).__name__} has no tables yet: call sampler.setup(counts) first."
            )
        if positives.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"positives must hold integer ids, got dtype {positives.dtype}.")
        table = next(iter(self.buffers()), None)
        if table is not None and table.device != positives.device:
            raise RuntimeError(
                f"{type(self).__name__}'s tables are on {table.device} but the positives are on "
                f"{positives.device}; move the sampler with .to(device) (a task's submodules move "
                "with it)."
            )
        if positives.device.type == "cpu" and positives.numel() > 0:
            low, high = int(positives.min()), int(positives.max())
            if low < 0 or high >= self.num_items:
                raise IndexError(
                    f"positive id out of range [0, {self.num_items}): saw {low}..{high}; "
                    "the ids must come from the vocabulary the sampler was set up with."
                )
        generator = self.stream.generator(positives.device)
        ids, log_q = self._draw(positives, num_negatives, generator, anchors, scorer)
        mask = ids != positives.unsqueeze(-1)
        return Negatives(ids=ids, log_q=log_q, mask=mask)

    # ------------------------------------------------------------------ strategy hooks
    @abstractmethod
    def _setup(self, counts: Tensor) -> None:
        """Builds tables from ``counts`` ``(V,)`` float64; store them as buffers."""

    @abstractmethod
    def _draw(
        self,
        positives: Tensor,
        num_negatives: int,
        generator: torch.Generator,
        anchors: Tensor | None,
        scorer: Scorer | None,
    ) -> tuple[Tensor, Tensor | None]:
        """Returns ``ids (*, K)`` long and ``log_q (*, K)`` or ``None``, on positives' device."""

    # ------------------------------------------------------------------ checkpoints
    def get_extra_state(self) -> dict[str, Any]:
        return {**self.stream.state_dict(), "num_items": self.num_items}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        """Restores a checkpoint; the current rank is kept (see :class:`RandomStream`)."""
        self.stream.load_state_dict(state)
        self.num_items = int(state.get("num_items", self.num_items))

    def _load_from_state_dict(  # type: ignore[no-untyped-def]
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, errors
    ) -> None:
        # Tables are sized by the vocabulary, which is only known at setup(): adopt the saved size.
        for name, buffer in self._buffers.items():
            key = prefix + name
            if key in state_dict and buffer is not None and buffer.shape != state_dict[key].shape:
                self._buffers[name] = torch.empty_like(state_dict[key], device=buffer.device)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, errors
        )
        for buffer in self._buffers.values():
            if buffer is not None and buffer.dim() == 1 and buffer.numel() > 0:
                self.num_items = int(buffer.numel())
                break

    def extra_repr(self) -> str:
        return f"num_items={self.num_items}, seed={self.seed}"


def uniform_log_q(num_items: int, shape: torch.Size, device: torch.device) -> Tensor:
    """``log(1/V)`` for every draw: shape ``shape``, float32 on ``device``."""
    return torch.full(shape, -math.log(num_items), device=device)
