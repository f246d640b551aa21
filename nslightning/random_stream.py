"""A seeded random stream per distributed rank that survives checkpoints."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor


def seed_plus_rank(seed: int, rank: int) -> int:
    """The samplers' convention: rank ``r`` draws from ``seed + r``."""
    return seed + rank


class RandomStream:
    """A ``torch.Generator`` seeded from ``(seed, rank)``, made on the device that draws.

    Its state can be saved and restored. Checkpoints are written by rank 0, so a restored state
    continues only on the rank that saved it; another rank re-seeds from ``(seed, its rank, the
    saved state)``: different on every rank and every resume, and reproducible.

    Args:
        seed: base seed.
        derive: ``(seed, rank) -> generator seed``.
    """

    def __init__(self, seed: int = 0, derive: Callable[[int, int], int] = seed_plus_rank) -> None:
        self.seed = int(seed)
        self.rank = 0
        self._derive = derive
        self._generator: torch.Generator | None = None
        self._pending: tuple[int, Tensor] | None = None  # (saving rank, generator state)

    def generator(self, device: torch.device) -> torch.Generator:
        """The stream's generator on ``device`` (created, and restored if pending, on first use)."""
        if self._generator is None or self._generator.device != device:
            generator = torch.Generator(device=device)
            generator.manual_seed(self._derive(self.seed, self.rank))
            if self._pending is not None:
                self._resume(generator, *self._pending)
                self._pending = None
            self._generator = generator
        return self._generator

    def manual_seed(self, seed: int) -> None:
        """Starts the stream afresh from ``seed``."""
        self.seed = int(seed)
        self._generator = None
        self._pending = None

    def set_rank(self, rank: int) -> None:
        """Sets the distributed rank; a new rank starts its own stream."""
        if rank != self.rank:
            self.rank = int(rank)
            self._generator = None

    def state_dict(self) -> dict[str, Any]:
        rank, state = self.rank, None
        if self._generator is not None:
            state = self._generator.get_state()
        elif self._pending is not None:  # restored but not drawn from yet
            rank, state = self._pending
        return {"seed": self.seed, "rank": rank, "generator": state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores a saved stream; the current rank is kept."""
        self.seed = int(state["seed"])
        self._generator = None
        saved: Tensor | None = state["generator"]
        self._pending = None if saved is None else (int(state["rank"]), saved.cpu())

    def _resume(self, generator: torch.Generator, saving_rank: int, state: Tensor) -> None:
        if saving_rank == self.rank:
            try:
                generator.set_state(state)
                return
            except RuntimeError:
                pass  # a state saved on another kind of device: re-seed below
        digest = hashlib.sha256(state.numpy().tobytes() + f"{self.seed}:{self.rank}".encode())
        generator.manual_seed(int.from_bytes(digest.digest()[:7], "little"))
