"""A mixture of samplers with given shares of the negatives (mixed negative sampling)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor, nn

from nslightning.random_stream import RandomStream
from nslightning.samplers.base import (
    Draw,
    DrawRequest,
    LogQKind,
    Negatives,
    NegativeSampler,
    derived_seed,
)

SHARE_TOLERANCE = 1e-6


def split_seed(seed: int, rank: int) -> int:
    """The seed of a mixture's split stream: apart from its components' streams."""
    return derived_seed(seed, -1 - rank)


class MixedSampler(NegativeSampler):
    """Takes a share of each row's ``K`` negatives from each of several samplers.

    Yang et al. 2020 ("Mixed negative sampling for learning two-tower neural networks") mix
    in-batch negatives with negatives drawn from the whole catalogue; any samplers mix here.
    Component ``c`` draws ``K_c`` columns, ``K_c`` being ``share_c * K`` rounded at random so that
    its expected value is exactly ``share_c * K`` (all rows of a call share the split). The
    columns are concatenated in component order.

    ``log_q`` is the mixture's: ``log sum_c (n_c / n) q_c(id)`` over the ``n_c`` columns each
    component actually drew in the call, with ``q_c`` the component's ``log_prob``: the
    probability of the id in a column chosen at random. It is ``None`` when a component has no
    closed-form ``log_q`` (hard negatives). Components are seeded from the mixture's seed (a
    ``seed`` given to a component is replaced), so they never share a random stream; the split
    has its own stream on the CPU.

    Capabilities follow the components: ``log_q_kind`` is ``"per_draw"`` when all of them are,
    ``None`` when one gives no ``log_q``; a component whose ``log_q`` is an inclusion
    probability (``unique=True``) is refused, as a mixture of inclusion probabilities means
    nothing. The mixture :attr:`needs_scorer` and is :attr:`batch_based` when one of its
    components is. It has no :attr:`fixed_distribution`: its columns are split among the
    components (not independent draws) and its ``log_q`` weighs the columns of each call.

    Args:
        samplers: the components.
        shares: fraction of the negatives from each component: positive, summing to 1.
        seed: base seed; component ``i`` gets a seed derived from ``(seed, i)``.

    Examples:
        >>> import torch
        >>> from nslightning.samplers import InBatchSampler, MixedSampler, UniformSampler
        >>> sampler = MixedSampler([InBatchSampler(), UniformSampler()], [0.5, 0.5], seed=0)
        >>> sampler.setup(torch.ones(10))
        >>> sampler.log_q_kind, sampler.batch_based, sampler.fixed_distribution
        ('per_draw', True, False)
        >>> sampler.split(4)  # columns per component: 2 in-batch, then 2 uniform
        [2, 2]
        >>> negatives = sampler.sample(torch.tensor([1, 2, 3, 4]), 4)
        >>> negatives.ids.tolist()
        [[4, 3, 3, 1], [1, 4, 7, 1], [2, 4, 6, 6], [3, 2, 9, 5]]
        >>> negatives.mask[0].tolist()  # the uniform part drew the row's own positive
        [True, True, True, False]
        >>> # 0.5 * 1/3 (a third of the row's in-batch candidates) + 0.5 * 1/10 (uniform)
        >>> [round(q, 3) for q in negatives.log_q[0].exp().tolist()]
        [0.217, 0.217, 0.217, 0.05]
    """

    def __init__(
        self, samplers: Sequence[NegativeSampler], shares: Sequence[float], seed: int = 0
    ) -> None:
        super().__init__(seed=seed)
        if len(samplers) == 0:
            raise ValueError("MixedSampler needs at least one sampler.")
        if len(shares) != len(samplers):
            raise ValueError(
                f"MixedSampler got {len(samplers)} samplers but {len(shares)} shares; give one "
                "share per sampler."
            )
        values = [float(share) for share in shares]
        if any(not math.isfinite(v) or v <= 0 for v in values):
            raise ValueError(f"MixedSampler shares must be positive, got {values}.")
        if abs(sum(values) - 1.0) > SHARE_TOLERANCE:
            raise ValueError(
                f"MixedSampler shares must sum to 1, got {values} (sum {sum(values):.6g}); "
                "e.g. shares: [0.5, 0.5]."
            )
        for sampler in samplers:
            if sampler.log_q_kind == "inclusion":
                raise ValueError(
                    f"{type(sampler).__name__}(unique=True) cannot be mixed: its log_q is an "
                    "inclusion probability (log_q_kind 'inclusion'), not a per-draw one; mix it "
                    "with unique=False."
                )
        self.samplers = nn.ModuleList(samplers)
        self.shares = values
        # The split is drawn on the CPU, so that it never waits for an accelerator.
        self.split_stream = RandomStream(seed, derive=split_seed)
        self.manual_seed(seed)

    @property
    def log_q_kind(self) -> LogQKind | None:  # type: ignore[override]  # from the components
        """``"per_draw"``, or ``None`` when a component gives no ``log_q``."""
        return None if any(c.log_q_kind is None for c in self.components()) else "per_draw"

    @property
    def needs_scorer(self) -> bool:  # type: ignore[override]  # from the components
        """Whether a component needs ``anchors=`` and ``scorer=``."""
        return any(component.needs_scorer for component in self.components())

    @property
    def batch_based(self) -> bool:  # type: ignore[override]  # from the components
        """Whether a component takes its candidates from the batches."""
        return any(component.batch_based for component in self.components())

    def manual_seed(self, seed: int) -> None:
        super().manual_seed(seed)
        self.split_stream.manual_seed(seed)

    def set_rank(self, rank: int) -> None:
        super().set_rank(rank)
        self.split_stream.set_rank(rank)

    def get_extra_state(self) -> dict[str, Any]:
        return {**super().get_extra_state(), "split": self.split_stream.state_dict()}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        super().set_extra_state(state)
        if "split" in state:
            self.split_stream.load_state_dict(state["split"])

    def _setup(self, counts: Tensor) -> None:
        for sampler in self.components():
            sampler.setup(counts)

    def split(self, num_negatives: int, generator: torch.Generator | None = None) -> list[int]:
        """Columns per component: ``share * K`` rounded at random, summing to ``K``.

        The fractional parts are resolved by systematic sampling, so component ``c`` gets one
        extra column with probability equal to its fractional part.
        """
        exact = [share * num_negatives for share in self.shares]
        counts = [math.floor(value + 1e-9) for value in exact]
        extra = num_negatives - sum(counts)
        if extra == 0:
            return counts
        fractions = [max(value - count, 0.0) for value, count in zip(exact, counts, strict=True)]
        total = sum(fractions)
        if generator is None:
            generator = self.split_stream.generator(torch.device("cpu"))
        offset = float(torch.rand((), generator=generator, device=generator.device))
        point, cumulative = offset * total / extra, 0.0
        step = total / extra
        for index, fraction in enumerate(fractions):
            cumulative += fraction
            while point < cumulative and extra > 0:
                counts[index] += 1
                extra -= 1
                point += step
        return counts

    def _draw(self, request: DrawRequest) -> Draw:
        device = request.positives.device
        split = self.split(request.num_negatives)
        parts: list[tuple[NegativeSampler, Negatives]] = []
        for sampler, columns in zip(self.components(), split, strict=True):
            if columns == 0:
                sampler.observe(request.positives)  # a memory bank still sees the batch
                continue
            sub = replace(
                request, num_negatives=columns, generator=sampler.stream.generator(device)
            )
            parts.append((sampler, sampler.draw(sub)))
        ids = torch.cat([negatives.ids for _, negatives in parts], dim=-1)
        valid = torch.cat([negatives.mask for _, negatives in parts], dim=-1)
        total = max(ids.shape[-1], 1)  # an in-batch part may have drawn nothing
        weights = [(sampler, negatives.ids.shape[-1] / total) for sampler, negatives in parts]
        log_q = mixture_log_prob(weights, ids, request.positives, request.exclude)
        return Draw(ids, log_q, valid)

    def log_prob(
        self, ids: Tensor, positives: Tensor, exclude: Tensor | None = None
    ) -> Tensor | None:
        """The mixture's log probability with the nominal shares."""
        weights = list(zip(self.components(), self.shares, strict=True))
        return mixture_log_prob(weights, ids, positives, exclude)

    def extra_repr(self) -> str:
        return f"shares={self.shares}, " + super().extra_repr()



def mixture_log_prob(
    weights: list[tuple[NegativeSampler, float]],
    ids: Tensor,
    positives: Tensor,
    exclude: Tensor | None,
) -> Tensor | None:
    """``log sum_c w_c q_c(ids)`` over components with ``w_c > 0``; ``None`` if a component has
    no ``log_prob``, ``-inf`` everywhere if no component has weight."""
    terms = []
    for sampler, weight in weights:
        if weight == 0:
            continue
        log_prob = sampler.log_prob(ids, positives, exclude)
        if log_prob is None:
            return None
        terms.append(log_prob + math.log(weight))
    if not terms:
        return ids.new_full(ids.shape, float("-inf"), dtype=torch.float32)
    return torch.logsumexp(torch.stack(terms), dim=0)

