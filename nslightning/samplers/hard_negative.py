"""Hard negatives: candidates the current model scores highest for the anchor."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Literal

import torch
from torch import Tensor

from nslightning.samplers.base import (
    Draw,
    DrawRequest,
    NegativeSampler,
    Scorer,
    check_id_range,
    hit_mask,
)
from nslightning.samplers.batch_counts import repeated_in_row

Selection = Literal["topk", "softmax"]
MINING_SCORES = 1 << 22  # scores held at once while mining the whole vocabulary


class HardNegativeSampler(NegativeSampler):
    """Keeps the hardest of a pool of candidates, as scored by the task's current model.

    Two sources for the pool of ``pool_size`` candidates per row:

    * **pool mode** (``base`` given): the pool is drawn from ``base`` (any sampler); scoring it
      is the one extra cost, a single ``scorer`` call on ``(B, pool_size)`` candidates.
    * **index mode** (``base=None``, ANCE, Xiong et al. 2021): for each anchor id the
      ``pool_size`` best-scoring items of the whole vocabulary are kept in an index (a buffer of
      ``num_anchors x pool_size`` int32, saved in checkpoints). An anchor's entry is mined again
      once it is ``refresh_every`` calls old (entries are refreshed lazily, when their anchor
      comes up), scoring the vocabulary in chunks so that memory stays ``O(chunk)`` beyond the
      index: with ``scorer.mine(anchors, items)`` (see :data:`~nslightning.samplers.Scorer`)
      one ``(block, chunk)`` product per step, else ``scorer`` on expanded candidates. The pool
      is then re-scored with the current model. Mining reads back the stale anchors (a host
      sync on accelerators).

    From the pool, candidates that are hits (the positive, ``exclude`` of the row, a duplicate)
    are set aside, the ``skip_top`` best are skipped (likely false negatives, Qu et al. 2021),
    and ``K`` are kept: the best (``selection="topk"``) or a draw without replacement from
    ``softmax(score / temperature)`` (``"softmax"``, by Gumbel top-k). When a pool has too few
    valid candidates the rest of the row is masked; a base that returns fewer than
    ``pool_size`` columns (in-batch) gives fewer negatives. ``log_q`` is ``None``: the choice
    follows scores, not a known distribution. ``sample`` needs ``anchors=`` and ``scorer=``
    (the tasks pass them).

    Args:
        base: sampler that draws the pool (pool mode), or ``None`` for index mode.
        pool_size: candidates per row, ``>= K + skip_top``.
        selection: ``"topk"`` or ``"softmax"``.
        temperature: softmax temperature ``> 0`` (``"softmax"`` only).
        skip_top: best-scoring candidates to skip.
        refresh_every: index mode: calls after which an anchor's entry is mined again.
        num_anchors: index mode: anchor ids are in ``[0, num_anchors)``; the vocabulary size
            when ``None``.
        chunk_size: index mode: vocabulary items scored per chunk.
        never_drawn: index mode: ids never mined (padding, ``<unk>``).
        seed: base seed (the base sampler's seed is derived from it).
    """

    index: Tensor
    age: Tensor
    calls: Tensor

    def __init__(
        self,
        base: NegativeSampler | None = None,
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
        super().__init__(seed=seed)
        if pool_size < 1:
            raise ValueError(f"pool_size must be >= 1, got {pool_size}.")
        if selection not in ("topk", "softmax"):
            raise ValueError(f"selection must be 'topk' or 'softmax', got {selection!r}.")
        if not temperature > 0:
            raise ValueError(
                f"temperature must be > 0, got {temperature}; small values approach top-k "
                "(use selection='topk' for exactly that)."
            )
        if skip_top < 0:
            raise ValueError(f"skip_top must be >= 0, got {skip_top}.")
        if refresh_every < 1 or chunk_size < 1:
            raise ValueError(
                f"refresh_every and chunk_size must be >= 1, got {refresh_every}, {chunk_size}."
            )
        if num_anchors is not None and num_anchors < 1:
            raise ValueError(f"num_anchors must be >= 1, got {num_anchors}.")
        if base is not None and (never_drawn or num_anchors is not None):
            raise ValueError(
                "never_drawn and num_anchors belong to index mode (base=None); in pool mode "
                "give never_drawn to the base sampler."
            )
        self.base = base
        self.pool_size = pool_size
        self.selection: Selection = selection
        self.temperature = float(temperature)
        self.skip_top = skip_top
        self.refresh_every = refresh_every
        self.num_anchors = num_anchors
        self.chunk_size = chunk_size
        self._set_never_drawn(never_drawn)
        self.register_buffer("index", torch.empty((0, pool_size), dtype=torch.int32))
        self.register_buffer("age", torch.empty(0, dtype=torch.int64))
        self.register_buffer("calls", torch.zeros((), dtype=torch.int64))
        self.manual_seed(seed)

    def _setup(self, counts: Tensor) -> None:
        if self.base is not None:
            self.base.setup(counts)
            return
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

    # ------------------------------------------------------------------ drawing
    def _draw(self, request: DrawRequest) -> Draw:
        num = request.num_negatives
        if num + self.skip_top > self.pool_size:
            raise ValueError(
                f"pool_size {self.pool_size} is smaller than num_negatives {num} + skip_top "
                f"{self.skip_top}; raise pool_size (a few times K is usual)."
            )
        if request.anchors is None or request.scorer is None:
            raise ValueError(
                "HardNegativeSampler needs anchors= and scorer= in sample(): the model scores "
                "the candidates; the tasks pass both."
            )
        positives, anchors, scorer = request.positives, request.anchors.long(), request.scorer
        rows = positives.numel()
        flat_anchors = anchors.reshape(rows)
        if self.base is not None:
            base = self.base
            sub = replace(
                request,
                num_negatives=self.pool_size,
                generator=base.stream.generator(positives.device),
            )
            pool = base.draw(sub)
            candidates = pool.ids.reshape(rows, pool.ids.shape[-1])
            usable = pool.mask.reshape(rows, pool.ids.shape[-1])
        else:
            candidates = self._index_pool(flat_anchors, scorer)
            usable = torch.ones_like(candidates, dtype=torch.bool)
            usable &= self.drawable(candidates)
            exclude = request.exclude
            if exclude is not None:
                exclude = exclude.reshape(rows, exclude.shape[-1])
            usable &= ~hit_mask(candidates, positives.reshape(rows).long(), exclude)
        usable &= ~repeated_in_row(candidates)
        scores = self._score(scorer, flat_anchors, candidates)
        # A base that returns fewer columns (in-batch) gives a smaller pool: fewer negatives.
        num = min(num, max(candidates.shape[1] - self.skip_top, 0))
        chosen, usable = self._select(scores, usable, num, request.generator)
        ids = candidates.gather(1, chosen)
        valid = usable.gather(1, chosen)
        shape = (*positives.shape, ids.shape[-1])
        return Draw(ids.view(shape), None, valid.view(shape))

    def _score(self, scorer: Scorer, anchors: Tensor, candidates: Tensor) -> Tensor:
        with torch.no_grad():
            scores = scorer(anchors, candidates)
        if scores.shape != candidates.shape:
            raise ValueError(
                f"the scorer returned shape {tuple(scores.shape)} for candidates of shape "
                f"{tuple(candidates.shape)}; it must give one score per candidate."
            )
        return scores.float()

    def _select(
        self, scores: Tensor, usable: Tensor, num: int, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        """``(R, num)`` positions in the pool, and ``usable`` without the skipped best.

        Args:
            scores: ``(R, P)`` scores of the pool.
            usable: ``(R, P)`` bool, candidates that may be negatives.
            num: negatives per row.
            generator: for the softmax selection.
        """
        scores = scores.masked_fill(~usable, float("-inf"))
        if self.skip_top:
            # A smaller pool (an in-batch base) may hold fewer than skip_top candidates.
            top = scores.topk(min(self.skip_top, scores.shape[1]), dim=1).indices
            usable = usable.scatter(1, top, False)
            scores = scores.masked_fill(~usable, float("-inf"))
        if self.selection == "topk":
            return scores.topk(num, dim=1).indices, usable
        uniform = torch.rand(
            scores.shape, device=scores.device, generator=generator
        ).clamp_(min=1e-12, max=1.0 - 1e-7)
        gumbel = -torch.log(-torch.log(uniform))
        return (scores / self.temperature + gumbel).topk(num, dim=1).indices, usable

    # ------------------------------------------------------------------ index mode
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
        vocab = self.num_items
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
        mode = "pool" if self.base is not None else f"index, refresh_every={self.refresh_every}"
        return (
            f"mode={mode}, pool_size={self.pool_size}, selection={self.selection}, "
            f"temperature={self.temperature}, skip_top={self.skip_top}, " + super().extra_repr()
        )

