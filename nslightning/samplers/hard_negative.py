"""Hard negatives: the candidates of a base sampler's pool that the current model scores highest."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from torch import Tensor

from nslightning.deprecation import warn_renamed
from nslightning.samplers.base import DrawRequest, NegativeSampler, Scorer
from nslightning.samplers.index_hard_negative import IndexHardNegativeSampler
from nslightning.samplers.scored_pool import ScoredPoolSampler, Selection

LEGACY_BUFFERS = ("index", "age", "calls")  # saved empty by pool mode before nslightning 0.2


class HardNegativeSampler(ScoredPoolSampler):
    """Keeps the hardest of a pool drawn from ``base``, as scored by the task's current model.

    Each row's pool is ``pool_size`` candidates drawn from ``base`` (any sampler); scoring it is
    the one extra cost, a single ``scorer`` call on ``(B, pool_size)`` candidates. ``K``
    negatives are then chosen from it as
    :class:`~nslightning.samplers.scored_pool.ScoredPoolSampler` describes. A base that returns
    fewer than ``pool_size`` columns (in-batch) gives fewer negatives. ``log_q`` is ``None``
    and ``sample`` needs ``anchors=`` and ``scorer=`` (the tasks pass them); the sampler is
    :attr:`batch_based` when its base is. For an index of each anchor's best items over the
    whole vocabulary (ANCE), use :class:`~nslightning.samplers.IndexHardNegativeSampler`.

    Deprecated until nslightning 0.3: without ``base`` (or with ``base=None``) this class builds
    an :class:`~nslightning.samplers.IndexHardNegativeSampler` from the other arguments, with a
    warning; ``refresh_every``, ``num_anchors``, ``chunk_size`` and ``never_drawn`` are its
    options (``refresh_every`` and ``chunk_size`` are ignored with a base, as before).

    Args:
        base: the sampler that draws the pool.
        pool_size: candidates per row, ``>= K + skip_top``.
        selection: ``"topk"`` or ``"softmax"``.
        temperature: softmax temperature ``> 0`` (``"softmax"`` only).
        skip_top: best-scoring candidates to skip.
        seed: base seed (the base sampler's seed is derived from it).

    Examples:
        >>> import torch
        >>> from nslightning.samplers import HardNegativeSampler, UniformSampler
        >>> sampler = HardNegativeSampler(UniformSampler(), pool_size=6, seed=0)
        >>> sampler.setup(torch.ones(10))
        >>> def scorer(anchors, candidates):  # a fixed model: the lower the id, the harder
        ...     return -candidates.float()
        >>> negatives = sampler.sample(
        ...     torch.tensor([1, 9]), 2, anchors=torch.tensor([3, 5]), scorer=scorer
        ... )
        >>> negatives.ids.tolist()  # the two lowest ids of each row's pool of 6 uniform draws
        [[0, 5], [2, 3]]
        >>> negatives.mask.tolist(), negatives.log_q
        ([[True, True], [True, True]], None)
        >>> sampler.needs_scorer, sampler.log_q_kind, sampler.fixed_distribution
        (True, None, False)
    """

    base: NegativeSampler

    def __new__(
        cls,
        base: NegativeSampler | None = None,
        pool_size: int = 64,
        selection: Selection = "topk",
        temperature: float = 1.0,
        skip_top: int = 0,
        seed: int = 0,
        *,
        refresh_every: int | None = None,
        num_anchors: int | None = None,
        chunk_size: int | None = None,
        never_drawn: Sequence[int] | None = None,
    ) -> Any:
        if base is not None:
            return super().__new__(cls)
        warn_renamed(
            "HardNegativeSampler", "index mode (base=None, or no base)",
            "IndexHardNegativeSampler with the same other arguments",
        )
        index_options: dict[str, Any] = {  # given ones only: the others keep their defaults
            "refresh_every": refresh_every, "num_anchors": num_anchors,
            "chunk_size": chunk_size, "never_drawn": never_drawn,
        }
        return IndexHardNegativeSampler(
            pool_size=pool_size, selection=selection, temperature=temperature, skip_top=skip_top,
            seed=seed, **{key: value for key, value in index_options.items() if value is not None},
        )

    def __init__(
        self,
        base: NegativeSampler,
        pool_size: int = 64,
        selection: Selection = "topk",
        temperature: float = 1.0,
        skip_top: int = 0,
        seed: int = 0,
        *,
        refresh_every: int | None = None,
        num_anchors: int | None = None,
        chunk_size: int | None = None,
        never_drawn: Sequence[int] | None = None,
    ) -> None:
        super().__init__(pool_size, selection, temperature, skip_top, seed=seed)
        if (refresh_every is not None and refresh_every < 1) or (
            chunk_size is not None and chunk_size < 1
        ):
            raise ValueError(
                f"refresh_every and chunk_size must be >= 1, got {refresh_every}, {chunk_size}."
            )
        if never_drawn or num_anchors is not None:
            raise ValueError(
                "never_drawn and num_anchors belong to index mode (IndexHardNegativeSampler); "
                "in pool mode give never_drawn to the base sampler."
            )
        if not isinstance(base, NegativeSampler):
            raise TypeError(
                f"base must be a NegativeSampler, got {type(base).__name__}; for an index over "
                "the vocabulary use IndexHardNegativeSampler."
            )
        self.base = base
        self.manual_seed(seed)

    def __getnewargs__(self) -> tuple[NegativeSampler]:
        # copy and pickle call __new__ with these: with the base, it builds this class.
        return (self.base,)

    @property
    def batch_based(self) -> bool:  # type: ignore[override]  # the base's
        """Whether the base takes its candidates from the batches."""
        return self.base.batch_based

    def _setup(self, counts: Tensor) -> None:
        self.base.setup(counts)

    def _pool(self, request: DrawRequest, anchors: Tensor, scorer: Scorer) -> tuple[Tensor, Tensor]:
        rows = anchors.numel()
        sub = replace(
            request,
            num_negatives=self.pool_size,
            generator=self.base.stream.generator(request.positives.device),
        )
        pool = self.base.draw(sub)
        columns = pool.ids.shape[-1]
        return pool.ids.reshape(rows, columns), pool.mask.reshape(rows, columns)

    def _load_from_state_dict(  # type: ignore[no-untyped-def]
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, errors
    ) -> None:
        # Checkpoints of nslightning 0.1 hold the (empty) index buffers of both modes.
        for name in LEGACY_BUFFERS:
            state_dict.pop(prefix + name, None)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, errors
        )
