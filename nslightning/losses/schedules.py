"""Schedules for a loss hyperparameter (the contrastive loss's λ) over training steps."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod


class Schedule(ABC):
    """A value as a function of the optimizer step, ``step -> value``."""

    @abstractmethod
    def __call__(self, step: int) -> float:
        """The value at ``step`` (0 for the first update)."""


class Constant(Schedule):
    """The same value at every step.

    Args:
        value: the value.
    """

    def __init__(self, value: float) -> None:
        self.value = float(value)

    def __call__(self, step: int) -> float:
        return self.value

    def __repr__(self) -> str:
        return f"Constant({self.value})"


class LinearWarmup(Schedule):
    """From ``start`` to ``end`` linearly over ``steps`` steps, then ``end``.

    Args:
        end: the value after the warm-up.
        steps: length of the warm-up in optimizer steps (``>= 1``).
        start: the value at step 0.
    """

    def __init__(self, end: float, steps: int, start: float = 0.0) -> None:
        if steps < 1:
            raise ValueError(f"LinearWarmup: steps must be >= 1, got {steps}.")
        if not (math.isfinite(start) and math.isfinite(end)):
            raise ValueError(f"LinearWarmup: start and end must be finite, got {start}, {end}.")
        self.start = float(start)
        self.end = float(end)
        self.steps = steps

    def __call__(self, step: int) -> float:
        progress = min(max(step, 0) / self.steps, 1.0)
        return self.start + (self.end - self.start) * progress

    def __repr__(self) -> str:
        return f"LinearWarmup(start={self.start}, end={self.end}, steps={self.steps})"
