"""A learnable affine calibration of scores, ``s' = (s + b) / t``, for pointwise losses."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class ScoreCalibration(nn.Module):
    """Maps scores to logits ``s' = (s + b) / t`` with a learnable offset ``b`` and a fixed or
    learnable temperature ``t > 0``.

    A pointwise loss (the λ-weighted logistic loss, SGNS, NCE) reads each score as log-odds
    on its own, so the scores' origin matters. A distance score ``s = -d <= 0`` cannot make a
    positive probable: ``σ(-d) <= 1/2`` and ``ℓ(s, +1) >= log 2`` whatever the model, which
    keeps pulling every pair together instead of ranking them. With ``b`` the logit is
    ``(b - d) / t``: pairs closer than ``b`` are positives, the Fermi–Dirac form of Krioukov et
    al. (2010) and Nickel & Kiela (2017). Softmax losses (InfoNCE) are unchanged by ``b``.

    ``t`` is kept as ``log t`` so that it stays positive; the order of the scores, and so every
    ranking metric, is the same before and after calibration.

    Args:
        bias: the starting ``b``.
        temperature: a fixed ``t``, or ``None`` to learn it (starting at 1).

    Shape:
        - scores: ``(*)``.
        - output: ``(*)``.

    Examples:
        >>> import torch
        >>> calibration = ScoreCalibration(bias=2.0, temperature=0.5)
        >>> calibration(torch.tensor([-1.0, -3.0]))
        tensor([ 2., -2.], grad_fn=<DivBackward0>)
    """

    def __init__(self, bias: float = 0.0, temperature: float | None = None) -> None:
        super().__init__()
        if not math.isfinite(bias):
            raise ValueError(f"the calibration's bias must be a finite number, got {bias}.")
        if temperature is not None and not (math.isfinite(temperature) and temperature > 0):
            raise ValueError(
                f"the calibration's temperature must be a finite number > 0 (or None to learn "
                f"it), got {temperature}."
            )
        self.bias = nn.Parameter(torch.tensor(float(bias)))
        log_temperature = torch.tensor(math.log(temperature if temperature is not None else 1.0))
        self.learn_temperature = temperature is None
        if self.learn_temperature:
            self.log_temperature = nn.Parameter(log_temperature)
        else:
            # the configured t, not a checkpoint's: it is a hyperparameter
            self.register_buffer("log_temperature", log_temperature, persistent=False)

    @property
    def temperature(self) -> Tensor:
        """``t``, a scalar tensor."""
        return self.log_temperature.exp()

    def forward(self, scores: Tensor) -> Tensor:
        return (scores + self.bias) / self.temperature

    def logged_values(self) -> dict[str, Tensor]:
        """``calibration_bias`` and ``calibration_temperature``, detached, for ``train/...``."""
        return {
            "calibration_bias": self.bias.detach(),
            "calibration_temperature": self.temperature.detach(),
        }

    def extra_repr(self) -> str:
        t = "learned" if self.learn_temperature else f"{self.temperature.item():g}"
        return f"temperature={t}"
