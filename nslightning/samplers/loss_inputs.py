"""What a loss needs from a sampler: ``log_q`` and ``pos_log_q`` of a draw, and the capabilities
its maths assumes."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from torch import Tensor

from nslightning.samplers.base import LogQKind, Negatives, NegativeSampler

if TYPE_CHECKING:
    from nslightning.losses.base import NegativeSamplingLoss


def per_draw_log_q(log_q: Tensor, kind: LogQKind | None, num_draws: int) -> Tensor | None:
    """A sampler's ``log_q`` as the log probability ``log q`` of one draw, whatever its kind.

    Losses that correct for the proposal use the expected number of times an id is among a row's
    ``K`` negatives: sampled softmax subtracts ``log(K q)`` from the scores, NCE compares the
    model with ``K q``. For independent draws (``kind="per_draw"``) that is ``K q`` with ``q`` the
    probability of one draw, and ``log_q`` is returned unchanged. A sampler that draws ``K``
    distinct ids (``TableSampler(unique=True)``, ``kind="inclusion"``) gives instead the
    inclusion probability ``pi = P(id among the row's draws)``; an id is there at most once, so
    ``pi`` itself is the expected count. The per-draw probability with that expected count is
    ``q = pi / K``, returned as ``log_q - log K``: then ``log(K q) = log pi``, the correction
    TensorFlow's ``sampled_softmax_loss`` applies with ``unique=True`` (subtracting
    ``log(K pi)`` instead would over-correct by ``log K``).

    Args:
        log_q: ``(*, K)`` float, :attr:`Negatives.log_q`.
        kind: the sampler's :attr:`NegativeSampler.log_q_kind`.
        num_draws: ``K``, the columns of each row (``>= 1`` for ``"inclusion"``).

    Returns:
        ``(*, K)`` float ``log q`` per draw, or ``None`` when ``kind`` is ``None`` (the sampler
        gives no ``log_q``).

    Examples:
        >>> import math, torch
        >>> inclusion = torch.tensor([[math.log(0.5), math.log(0.2)]])
        >>> per_draw = per_draw_log_q(inclusion, "inclusion", num_draws=2)
        >>> [round(q, 4) for q in per_draw.exp()[0].tolist()]
        [0.25, 0.1]
        >>> (per_draw + math.log(2)).exp().allclose(inclusion.exp())  # K q is pi again
        True
        >>> per_draw_log_q(inclusion, "per_draw", num_draws=2) is inclusion
        True
        >>> per_draw_log_q(inclusion, None, num_draws=2) is None
        True
    """
    if kind is None:
        return None
    if kind == "per_draw":
        return log_q
    if kind == "inclusion":
        if num_draws < 1:
            raise ValueError(f"num_draws must be >= 1 for inclusion, got {num_draws}.")
        return log_q - math.log(num_draws)
    raise ValueError(f"kind must be 'per_draw', 'inclusion' or None, got {kind!r}.")


def correction_inputs(
    sampler: NegativeSampler, negatives: Negatives, positives: Tensor
) -> tuple[Tensor | None, Tensor | None]:
    """The ``log_q`` and ``pos_log_q`` a loss reads (``uses_log_q``) for one draw.

    ``log_q`` is the log probability of one draw whatever the sampler's ``log_q_kind``
    (:func:`per_draw_log_q`: inclusion probabilities of ``unique``
    draws are divided by ``K``). ``pos_log_q`` is the positive's per-draw log probability when
    the sampler has a ``fixed_distribution`` (its ``log_prob`` is then the closed form for any
    id; sampled softmax and NCE correct the positive with it), else ``None``.

    Args:
        sampler: the sampler that drew ``negatives``.
        negatives: ``(*, K)`` the draw (``(1, K)`` for candidates shared by every row).
        positives: ``(*)`` the ids the negatives stand in for (every row's, also when the
            candidates are shared).

    Returns:
        ``(log_q (*, K) or None, pos_log_q (*) or None)``.

    Examples:
        >>> import torch
        >>> from nslightning.samplers import UniformSampler
        >>> sampler = UniformSampler(seed=0)
        >>> sampler.setup(torch.ones(4))
        >>> positives = torch.tensor([0, 1])
        >>> log_q, pos_log_q = correction_inputs(sampler, sampler.sample(positives, 2), positives)
        >>> log_q.exp().tolist(), pos_log_q.exp().tolist()
        ([[0.25, 0.25], [0.25, 0.25]], [0.25, 0.25])
    """
    if negatives.log_q is None:
        return None, None
    log_q = per_draw_log_q(negatives.log_q, sampler.log_q_kind, negatives.ids.shape[-1])
    pos_log_q = None
    if sampler.fixed_distribution:
        drawn = sampler.log_prob(positives.unsqueeze(-1), positives)
        pos_log_q = None if drawn is None else drawn.squeeze(-1)
    return log_q, pos_log_q


def check_compatible(sampler: NegativeSampler, loss: NegativeSamplingLoss) -> None:
    """Refuses a loss that needs what the sampler does not give, from their declared
    capabilities (``uses_log_q``/``log_q_kind``, ``needs_fixed_distribution``/
    ``fixed_distribution``).

    Raises:
        ValueError: naming both and the fix.
    """
    sampler_name, loss_name = type(sampler).__name__, type(loss).__name__
    if loss.uses_log_q and sampler.log_q_kind is None:
        raise ValueError(
            f"{loss_name} corrects with log_q, but {sampler_name} gives none (hard negatives "
            "are chosen by score, not drawn from a known distribution): turn the loss's "
            "correction off (correct_log_q: false) or use a sampler that draws from a "
            "distribution."
        )
    if loss.needs_fixed_distribution and not sampler.fixed_distribution:
        raise ValueError(
            f"{loss_name} needs a fixed noise distribution q (its logits are s - log(K q)), but "
            f"{sampler_name} does not draw every negative from one distribution over the "
            "vocabulary; use a log-uniform, unigram or uniform sampler (without unique or "
            "redraw)."
        )
