"""Log-uniform (Zipfian) negatives over frequency-sorted ids, as used for language models."""

from __future__ import annotations

import math
import warnings

import torch
from torch import Tensor

from nslightning.samplers.table import TableSampler


class LogUniformSampler(TableSampler):
    """Draws id ``k`` with probability ``log((k + 2) / (k + 1)) / log(V + 1)``.

    This is the sampler of Jean et al. 2015 and TensorFlow's ``log_uniform_candidate_sampler``:
    a Zipf law over ids sorted by decreasing frequency (as :class:`~nslightning.data.Vocabulary`
    numbers them), needing no counts. A draw is ``floor(exp(u log(V + 1))) - 1`` with ``u``
    uniform in float64, so every id keeps its exact probability even at ``V = 10^7``; with
    ``never_drawn`` an alias table over the remaining ids is used instead.

    Args:
        seed: base seed of the generator (rank ``r`` uses ``seed + r``).
        never_drawn: ids never drawn (padding, ``<unk>``).
        unique: no id twice in a row (see :class:`~nslightning.samplers.table.TableSampler`).
        redraw: redraw accidental hits instead of masking them.

    Examples:
        >>> import torch
        >>> from nslightning.samplers import LogUniformSampler
        >>> sampler = LogUniformSampler(seed=0)
        >>> sampler.setup(torch.tensor([50.0, 20.0, 10.0, 5.0, 2.0, 1.0]))  # sorted by count
        >>> [round(p, 3) for p in sampler.probabilities().tolist()]
        [0.356, 0.208, 0.148, 0.115, 0.094, 0.079]
        >>> negatives = sampler.sample(torch.tensor([0, 3]), 4)
        >>> negatives.ids.tolist(), negatives.mask.tolist()
        ([[5, 2, 1, 4], [2, 3, 0, 0]], [[True, True, True, True], [True, False, True, True]])
    """

    closed_form = True

    def _weights(self, counts: Tensor) -> Tensor:
        if counts.numel() > 1 and (counts[1:] > counts[:-1]).any():
            warnings.warn(
                "LogUniformSampler assumes ids sorted by decreasing frequency, but these counts "
                "are not: the Zipf law will favour the wrong items. Number the vocabulary by "
                "count (nslightning's Vocabulary does) or use UnigramSampler.",
                stacklevel=4,
            )
        ranks = torch.arange(counts.numel(), dtype=torch.float64)
        return torch.log1p(1.0 / (ranks + 1.0))

    def _closed_form_draw(self, num: int, generator: torch.Generator) -> Tensor:
        u = torch.rand(num, device=generator.device, generator=generator, dtype=torch.float64)
        ids = u.mul_(math.log(self.vocab_size + 1.0)).exp_().long().sub_(1)
        return ids.clamp_(0, self.vocab_size - 1)
