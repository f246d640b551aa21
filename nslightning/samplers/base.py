"""The negative-sampler interface shared by every task.

A sampler is an ``nn.Module`` so that its tables (buffers) move with ``.to(device)`` and are saved
in checkpoints. It owns its random generator, seeded with ``seed + rank`` so that distributed
ranks draw different negatives and a run is reproducible under a seed.
"""

from __future__ import annotations

import hashlib
import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

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
        self.seed = int(seed)
        self.rank = 0
        self.num_items = 0
        self._generator: torch.Generator | None = None
        self._pending_state: tuple[int, Tensor] | None = None  # (saving rank, generator state)

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

    def manual_seed(self, seed: int) -> None:
        """Re-seeds the generator with ``seed + rank``; the next draw starts afresh."""
        self.seed = int(seed)
        self._generator = None
        self._pending_state = None

    def set_rank(self, rank: int) -> None:
        """Sets the distributed rank: the generator is re-seeded with ``seed + rank``."""
        if rank != self.rank:
            self.rank = int(rank)
            self._generator = None

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
        generator = self._generator_for(positives.device)
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

    # ------------------------------------------------------------------ generator and state
    def _generator_for(self, device: torch.device) -> torch.Generator:
        if self._generator is None or self._generator.device != device:
            generator = torch.Generator(device=device)
            generator.manual_seed(self.seed + self.rank)
            if self._pending_state is not None:
                self._resume(generator, *self._pending_state)
                self._pending_state = None
            self._generator = generator
        return self._generator

    def _resume(self, generator: torch.Generator, saving_rank: int, state: Tensor) -> None:
        """Continues a checkpoint's stream on the rank that saved it.

        Checkpoints are written by rank 0, so another rank must not adopt that stream: it
        re-seeds from ``(seed, its rank, the saved state)``: different on every rank and every
        resume, and reproducible.
        """
        if saving_rank == self.rank:
            try:
                generator.set_state(state)
                return
            except RuntimeError:
                pass  # a state saved on another kind of device: re-seed below
        digest = hashlib.sha256(state.numpy().tobytes() + f"{self.seed}:{self.rank}".encode())
        generator.manual_seed(int.from_bytes(digest.digest()[:7], "little"))

    def get_extra_state(self) -> dict[str, Any]:
        rank, state = self.rank, None
        if self._generator is not None:
            state = self._generator.get_state()
        elif self._pending_state is not None:  # restored but not drawn from yet
            rank, state = self._pending_state
        return {"seed": self.seed, "rank": rank, "num_items": self.num_items, "generator": state}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        """Restores a checkpoint; the current rank is kept (see :meth:`_resume`)."""
        self.seed = int(state["seed"])
        self.num_items = int(state.get("num_items", self.num_items))
        self._generator = None
        saved: Tensor | None = state["generator"]
        self._pending_state = None if saved is None else (int(state["rank"]), saved.cpu())

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
