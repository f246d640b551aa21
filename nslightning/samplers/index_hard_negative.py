"""ANCE-style hard negatives: an index of each anchor's best items over the whole vocabulary."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from nslightning.samplers.base import DrawRequest, Scorer, check_id_range, hit_mask
from nslightning.samplers.scored_pool import ScoredPoolSampler, Selection

MINING_SCORES = 1 << 22  # scores held at once while mining the whole vocabulary


class IndexHardNegativeSampler(ScoredPoolSampler):
    """Hard negatives from an index of each anchor's best-scoring items (ANCE, Xiong et al. 2021).

    For each anchor id the ``pool_size`` best-scoring items of the whole vocabulary are kept in
    an index (a buffer of ``num_anchors x pool_size`` int32, saved in checkpoints). An anchor's
    entry is mined again once it is ``refresh_every`` calls old (entries are refreshed lazily,
    when their anchor comes up), scoring the vocabulary in chunks so that memory stays
    ``O(chunk)`` beyond the index: with ``scorer.mine(anchors, items)`` (see
    :data:`~nslightning.samplers.Scorer`) one ``(block, chunk)`` product per step, else
    ``scorer`` on expanded candidates. Mining reads back the stale anchors (a host sync on
    accelerators). The row's pool is then re-scored with the current model and ``K`` negatives
    are chosen from it as :class:`~nslightning.samplers.scored_pool.ScoredPoolSampler` describes
    (the positive, ``exclude`` of the row and ``never_drawn`` ids are never chosen).

    ``log_q`` is ``None`` and ``sample`` needs ``anchors=`` and ``scorer=`` (the tasks pass
    them). Until nslightning 0.3, ``HardNegativeSampler(base=None, ...)`` builds this sampler.

    Args:
        pool_size: index entries per anchor, ``>= K + skip_top`` and at most the items that can
            be mined.
        selection: ``"topk"`` or ``"softmax"``.
        temperature: softmax temperature ``> 0`` (``"softmax"`` only).
        skip_top: best-scoring candidates to skip.
        refresh_every: calls after which an anchor's entry is mined again.
        num_anchors: anchor ids are in ``[0, num_anchors)``; the vocabulary size when ``None``.
        chunk_size: vocabulary items scored per chunk.
        never_drawn: ids never mined (padding, ``<unk>``).
        seed: base seed of the generator (rank ``r`` uses ``seed + r``).

    Examples:
        >>> import torch
        >>> from nslightning.samplers import IndexHardNegativeSampler
        >>> sampler = IndexHardNegativeSampler(pool_size=4, refresh_every=100, seed=0)
        >>> sampler.setup(torch.ones(10))
        >>> def scorer(anchors, candidates):  # a fixed model: the lower the id, the harder
        ...     return -candidates.float()
        >>> negatives = sampler.sample(
        ...     torch.tensor([1, 9]), 2, anchors=torch.tensor([3, 5]), scorer=scorer
        ... )
        >>> sampler.index[3].tolist()  # anchor 3's best items of the vocabulary
        [0, 1, 2, 3]
        >>> negatives.ids.tolist()  # row 0 skips its positive, 1
        [[0, 2], [0, 1]]
        >>> negatives.mask.tolist(), negatives.log_q
        ([[True, True], [True, True]], None)
    """

    index: Tensor
    age: Tensor
    calls: Tensor

    def __init__(
        self,
        pool_size: int = 64,
        selection: Selection = "topk",
        temperature: float = 1.0,
        skip_top: int = 0,
        refresh_every: int = 1000,
        num_anchors: int | None = None,
        chunk_size: int = 8192,
        never_drawn: Sequence[int] | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(pool_size, selection, temperature, skip_top, seed=seed)
        if refresh_every < 1 or chunk_size < 1:
            raise ValueError(
                f"refresh_every and chunk_size must be >= 1, got {refresh_every}, {chunk_size}."
            )
        if num_anchors is not None and num_anchors < 1:
            raise ValueError(f"num_anchors must be >= 1, got {num_anchors}.")
        self.refresh_every = refresh_every
        self.num_anchors = num_anchors
        self.chunk_size = chunk_size
        self._set_never_drawn(never_drawn)
        self.register_buffer("index", torch.empty((0, pool_size), dtype=torch.int32))
        self.register_buffer("age", torch.empty(0, dtype=torch.int64))
        self.register_buffer("calls", torch.zeros((), dtype=torch.int64))
        self.manual_seed(seed)

    def _setup(self, counts: Tensor) -> None:
        minable = counts.numel() - sum(1 for i in self.never_drawn if i < counts.numel())
        if self.pool_size > minable:
            raise ValueError(
                f"pool_size {self.pool_size} exceeds the {minable} items that can be mined "
                f"(vocabulary of {counts.numel()}, never_drawn {len(self.never_drawn)}); lower "
                "pool_size."
            )
        anchors = self.num_anchors if self.num_anchors is not None else counts.numel()
        device = self.calls.device
        self.index = torch.zeros((anchors, self.pool_size), dtype=torch.int32, device=device)
        self.age = torch.full((anchors,), -1, dtype=torch.int64, device=device)
        self.calls.zero_()

    def _pool(self, request: DrawRequest, anchors: Tensor, scorer: Scorer) -> tuple[Tensor, Tensor]:
        rows = anchors.numel()
        candidates = self._index_pool(anchors, scorer)
        usable = self.drawable(candidates)
        exclude = request.exclude
        if exclude is not None:
            exclude = exclude.reshape(rows, exclude.shape[-1])
        usable &= ~hit_mask(candidates, request.positives.reshape(rows).long(), exclude)
        return candidates, usable

    def _index_pool(self, anchors: Tensor, scorer: Scorer) -> Tensor:
        """``(R, pool_size)`` long: the anchors' index entries, mined again where stale."""
        check_id_range(
            anchors, 0, self.index.shape[0], "anchor id of the hard-negative index",
            "set num_anchors to the number of anchor ids.",
        )
        self.calls += 1
        age = self.age[anchors]
        stale = (age < 0) | (self.calls - age >= self.refresh_every)
        to_mine = torch.unique(anchors[stale])
        if to_mine.numel() > 0:
            self.index[to_mine] = self._mine(to_mine, scorer).int()
            self.age[to_mine] = self.calls
        return self.index[anchors].long()

    def _mine(self, anchors: Tensor, scorer: Scorer) -> Tensor:
        """``(A, pool_size)`` the best-scoring items of the whole vocabulary for each anchor."""
        vocab = self.vocab_size
        chunk = min(self.chunk_size, vocab)
        block = max(1, MINING_SCORES // (chunk + self.pool_size))
        mined = []
        for start in range(0, anchors.numel(), block):
            rows = anchors[start : start + block]
            best_scores = torch.full(
                (rows.numel(), self.pool_size), float("-inf"), device=anchors.device
            )
            best_ids = torch.zeros((rows.numel(), self.pool_size), dtype=torch.int64,
                                   device=anchors.device)
            for first in range(0, vocab, chunk):
                items = torch.arange(first, min(first + chunk, vocab), device=anchors.device)
                candidates = items.expand(rows.numel(), -1)
                scores = self._mining_scores(scorer, rows, items)
                if self.never_drawn:
                    scores = scores.masked_fill(~self.drawable(items)[None, :], float("-inf"))
                merged_scores = torch.cat([best_scores, scores], dim=1)
                merged_ids = torch.cat([best_ids, candidates], dim=1)
                best_scores, where = merged_scores.topk(self.pool_size, dim=1)
                best_ids = merged_ids.gather(1, where)
            mined.append(best_ids)
        return torch.cat(mined)

    def _mining_scores(self, scorer: Scorer, anchors: Tensor, items: Tensor) -> Tensor:
        """``(A, C)`` scores of shared ``items`` for ``anchors``: ``scorer.mine`` if it has it."""
        mine = getattr(scorer, "mine", None)
        if mine is None:
            return self._score(scorer, anchors, items.expand(anchors.numel(), -1))
        with torch.no_grad():
            scores = mine(anchors, items)
        expected = (anchors.numel(), items.numel())
        if tuple(scores.shape) != expected:
            raise ValueError(
                f"scorer.mine returned shape {tuple(scores.shape)}, expected {expected}: one "
                "score per (anchor, item)."
            )
        return scores.float()

    def extra_repr(self) -> str:
        never = f"never_drawn={self.never_drawn}, " if self.never_drawn else ""
        anchors = f"num_anchors={self.num_anchors}, " if self.num_anchors is not None else ""
        return (
            f"refresh_every={self.refresh_every}, chunk_size={self.chunk_size}, " + anchors
            + never + super().extra_repr()
        )
