"""Shared by the sampler tests: a state dict as a checkpoint file would give it back."""

from __future__ import annotations

import io
from typing import Any


def saved_and_loaded(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` after ``torch.save`` and ``torch.load`` through bytes."""
    import torch

    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=False)
