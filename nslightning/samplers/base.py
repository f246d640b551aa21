"""The negative-sampler interface shared by every task.

A sampler is an ``nn.Module`` so that its tables and state (buffers) move with ``.to(device)`` and
are saved in checkpoints. It owns its random generator, seeded with ``seed + rank`` so that
distributed ranks draw different negatives and a run is reproducible under a seed. Composite
samplers (mixtures, hard-negative mining) hold other samplers as submodules and seed them from
their own seed.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor, nn

from nslightning.deprecation import warn_renamed
from nslightning.random_stream import RandomStream

LogQKind = Literal["per_draw", "inclusion"]
"""What :attr:`Negatives.log_q` holds: see :attr:`NegativeSampler.log_q_kind`."""

Scorer = Callable[[Tensor, Tensor], Tensor]
"""``scorer(anchors (B,), candidates (B, M)) -> scores (B, M)``, supplied by a task (no grad).

It is called with the rows of the current ``sample`` call. A scorer may also define
``mine(anchors (A,), items (C,)) -> scores (A, C)``: any anchor ids against items shared by all
of them, which hard-negative mining over the whole vocabulary uses (one matrix product instead
of gathering ``A x C`` candidate vectors)."""


@dataclass
class Negatives:
    """Negatives drawn for a tensor of positives.

    Attributes:
        ids: ``(*, K)`` long, the drawn candidate ids.
        log_q: ``(*, K)`` float, log probability of each draw under the sampler (for the logQ
            correction of sampled softmax), or ``None`` when the sampler cannot give it (hard
            negatives are chosen by score, not drawn from a known distribution). Per draw or
            an inclusion probability, as the sampler's ``log_q_kind`` says
            (:func:`per_draw_log_q` gives the per-draw one either way).
        mask: ``(*, K)`` bool, ``False`` where the draw must not count as a negative: an
            accidental hit (it equals the positive or one of the excluded ids of its row), or an
            empty slot of a batch-based sampler that had fewer candidates than ``K``.
        positions: ``(*, K)`` long, for negatives taken from the batch's positives: where each
            one sits among them (the flattened positives, across ranks the gathered global
            batch in rank order), so that a task can reuse the positives' encoded vectors;
            ``None`` for other samplers.
    """

    ids: Tensor
    log_q: Tensor | None
    mask: Tensor
    positions: Tensor | None = None


class Draw(NamedTuple):
    """What a strategy's :meth:`NegativeSampler._draw` returns.

    Attributes:
        ids: ``(*, K')`` long.
        log_q: ``(*, K')`` float or ``None``.
        valid: ``(*, K')`` bool, ``False`` for empty slots, or ``None`` when every slot is a draw.
        positions: ``(*, K')`` long positions among the batch's positives, or ``None`` (see
            :class:`Negatives`).
    """

    ids: Tensor
    log_q: Tensor | None
    valid: Tensor | None = None
    positions: Tensor | None = None


@dataclass
class DrawRequest:
    """One call of :meth:`NegativeSampler.sample`, validated, as the strategies see it.

    Attributes:
        positives: ``(*)`` long ids.
        num_negatives: ``K >= 1``.
        generator: the sampler's generator on the positives' device.
        anchors: ``(*)`` long ids, or ``None``.
        scorer: the task's scorer, or ``None``.
        exclude: ``(*, C)`` long ids that are known positives of each row (``-1`` pads), or
            ``None``.
    """

    positives: Tensor
    num_negatives: int
    generator: torch.Generator
    anchors: Tensor | None = None
    scorer: Scorer | None = None
    exclude: Tensor | None = None


def derived_seed(seed: int, index: int) -> int:
    """The seed of a composite sampler's ``index``-th component: distinct, reproducible."""
    digest = hashlib.sha256(f"nslightning-component:{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:6], "little")


def hit_mask(ids: Tensor, positives: Tensor, exclude: Tensor | None) -> Tensor:
    """``True`` where a draw is an accidental hit.

    Args:
        ids: ``(*, K)`` drawn ids.
        positives: ``(*)`` positive ids.
        exclude: ``(*, C)`` further ids to treat as hits (``-1`` pads), or ``None``.

    Returns:
        ``(*, K)`` bool.
    """
    hits = ids == positives.unsqueeze(-1)
    if exclude is not None and exclude.shape[-1] > 0:
        hits |= (ids.unsqueeze(-1) == exclude.unsqueeze(-2)).any(-1)
    return hits


def check_id_range(ids: Tensor, low: int, high: int, what: str, fix: str) -> None:
    """Raises ``IndexError`` naming ``what`` and ``fix`` if ``ids`` leave ``[low, high)``.

    Only on the CPU: reading the range back from an accelerator would stall it.
    """
    if ids.device.type != "cpu" or ids.numel() == 0:
        return
    seen_low, seen_high = int(ids.min()), int(ids.max())
    if seen_low < low or seen_high >= high:
        raise IndexError(
            f"{what} out of range [{low}, {high}): saw {seen_low}..{seen_high}; {fix}"
        )


class NegativeSampler(nn.Module, ABC):
    """Base class: validates input, owns the generator, delegates drawing to :meth:`_draw`.

    Each strategy declares what it can do in four class attributes (with the defaults below),
    so that tasks, losses and tests read capabilities instead of guessing from classes. A
    strategy whose options change a capability overrides it with a property.

    Attributes:
        fixed_distribution: every draw comes independently from one distribution over the
            vocabulary that depends neither on the row nor on the batch, and ``log_q`` is the
            probability of one draw under it, so that NCE and candidates shared by a whole batch
            can use it; :meth:`log_prob` is then its closed form for any id (the true class
            included). ``False`` by default; ``True`` for the table samplers unless ``unique``
            or ``redraw`` is set.
        log_q_kind: what :attr:`Negatives.log_q` is: ``"per_draw"`` (default), the probability
            of the id in one draw (a column chosen at random); ``"inclusion"``, the probability
            that the id is among the row's draws (``TableSampler(unique=True)``); ``None`` when
            the sampler gives no ``log_q`` (hard negatives). :func:`per_draw_log_q` turns either
            into a per-draw probability.
        needs_scorer: :meth:`sample` needs ``anchors=`` and ``scorer=`` (hard negatives, and a
            mixture with such a component). ``False`` by default.
        batch_based: the candidates come from the batches the sampler sees (in-batch: the
            current one; memory bank: the recent ones), so ids absent from them cannot be drawn,
            ``log_q`` changes with the batch and ``mask`` may also mark empty slots (a batch or
            queue with too few candidates). A composite is batch-based when one of its
            components is. ``False`` by default. An in-batch sampler also takes ``K`` as a cap
            (it may return fewer columns); a memory bank does not (it draws ``K`` with
            replacement): that difference is :meth:`draws_from_items`.

    Args:
        seed: base seed of the sampler's generator; rank ``r`` uses ``seed + r``.
    """

    fixed_distribution: bool = False
    log_q_kind: LogQKind | None = "per_draw"
    needs_scorer: bool = False
    batch_based: bool = False

    never_drawn_ids: Tensor

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.stream = RandomStream(seed)
        self.vocab_size = 0

    def _set_never_drawn(self, never_drawn: Sequence[int] | None) -> None:
        """Keeps ids that are never drawn (padding, ``<unk>``): sorted and distinct as
        ``never_drawn``, and as the buffer ``never_drawn_ids`` (moved with the sampler, not
        saved: it comes from the constructor)."""
        self.never_drawn = sorted({int(i) for i in never_drawn or ()})
        self.register_buffer(
            "never_drawn_ids", torch.tensor(self.never_drawn, dtype=torch.int64), persistent=False
        )

    def drawable(self, ids: Tensor) -> Tensor:
        """``True`` where an id is not in ``never_drawn`` (same shape as ``ids``)."""
        if not self.never_drawn:
            return torch.ones_like(ids, dtype=torch.bool)
        return ~torch.isin(ids, self.never_drawn_ids)

    # ------------------------------------------------------------------ public interface
    def setup(self, counts: Tensor) -> None:
        """Builds the sampler's tables from item frequencies.

        Args:
            counts: ``(V,)`` non-negative frequencies of the ``V`` items (token counts), item
                ``i`` at index ``i``.
        """
        counts = torch.as_tensor(counts)
        if counts.dim() != 1 or counts.numel() == 0:
            raise ValueError(
                f"{type(self).__name__}.setup expects a non-empty 1-D tensor of counts, got shape "
                f"{tuple(counts.shape)}; pass one count per vocabulary item."
            )
        counts = counts.to(torch.float64)
        if not torch.isfinite(counts).all() or (counts < 0).any():
            raise ValueError(
                f"{type(self).__name__}.setup: counts must be finite and >= 0; "
                "check the vocabulary counts you passed."
            )
        self.vocab_size = int(counts.numel())
        self._setup(counts)

    @property
    def num_items(self) -> int:
        """Deprecated spelling of :attr:`vocab_size` (read-only; warns)."""
        warn_renamed(type(self).__name__, "num_items", "vocab_size")
        return self.vocab_size

    @property
    def seed(self) -> int:
        return self.stream.seed

    @property
    def rank(self) -> int:
        return self.stream.rank

    def manual_seed(self, seed: int) -> None:
        """Re-seeds the generator with ``seed + rank`` (components from ``seed``): a fresh start."""
        self.stream.manual_seed(seed)
        for index, component in enumerate(self.components()):
            component.manual_seed(derived_seed(seed, index))

    def set_rank(self, rank: int) -> None:
        """Sets the distributed rank: the generators are re-seeded with ``seed + rank``."""
        self.stream.set_rank(rank)
        for component in self.components():
            component.set_rank(rank)

    def components(self) -> Iterator[NegativeSampler]:
        """The samplers this one is built from (none for a basic strategy)."""
        for child in self.children():
            if isinstance(child, NegativeSampler):
                yield child
            elif isinstance(child, nn.ModuleList):
                yield from (c for c in child if isinstance(c, NegativeSampler))

    def draws_from_items(self) -> bool:
        """Whether each row gets ``K`` negatives, each drawn from the ``V`` items (with or
        without replacement), so that asking for ``K >= V`` per row is a mistake: the tasks
        refuse it (:meth:`check_num_negatives`).

        ``True`` for table samplers, a memory bank and hard negatives mined from the items; a
        sampler for which ``K`` only caps the batch's ``N - 1`` other positives (in-batch)
        returns ``False``, and so does a composite with such a component (a composite draws
        from the items when all of its components do).

        This is not the negation of :attr:`batch_based`, which says where candidates come from:
        a sampler that does not draw from the items is batch-based, but a memory bank is
        batch-based (its candidates are recent positives) and still draws ``K`` with
        replacement, so ``K >= V`` gives it repeats as surely as a table sampler.
        """
        return all(component.draws_from_items() for component in self.components())

    def check_num_negatives(
        self, num_negatives: int, vocab_size: int, size: str, items: str, fix: str
    ) -> None:
        """Refuses ``K >= V`` when :meth:`draws_from_items`: each row would get as many
        negatives as there are items or more, repeats and its own positive among them.

        Args:
            num_negatives: ``K`` per row.
            vocab_size: ``V``.
            size: what ``V`` is called (``"vocabulary size"``), named in the message.
            items: what the items are, plural (``"words"``).
            fix: the task's other remedies, appended after lowering ``--model.num_negatives``.

        Raises:
            ValueError: naming both numbers and the fixes.
        """
        if num_negatives < vocab_size or not self.draws_from_items():
            return
        raise ValueError(
            f"num_negatives={num_negatives} >= {size} {vocab_size}: {type(self).__name__} draws "
            f"every negative from the {items}, so each row would get as many negatives as there "
            f"are {items} or more (repeats, and its own positive, among them). Lower "
            f"--model.num_negatives below {vocab_size}{fix}."
        )

    def sample(
        self,
        positives: Tensor,
        num_negatives: int,
        *,
        anchors: Tensor | None = None,
        scorer: Scorer | None = None,
        exclude: Tensor | None = None,
    ) -> Negatives:
        """Draws ``num_negatives`` negatives for every positive.

        Args:
            positives: ``(*)`` long ids of the positives (the items the negatives stand in for).
            num_negatives: ``K >= 1``. Batch-based samplers (in-batch) return fewer columns when
                the batch has fewer than ``K`` other positives.
            anchors: ``(*)`` long ids of the anchors, for samplers that condition on them.
            scorer: scores candidates for anchors, for samplers that mine hard negatives.
            exclude: ``(*, C)`` long ids of each row's known positives (``-1`` pads): drawing
                one is an accidental hit, masked (or redrawn by samplers that can).

        Returns:
            :class:`Negatives` with ``ids``, ``log_q`` and ``mask`` of shape ``(*, K)``.
        """
        self._check_request(positives, num_negatives, anchors, exclude)
        generator = self.stream.generator(positives.device)
        request = DrawRequest(positives, num_negatives, generator, anchors, scorer, exclude)
        return self.draw(request)

    def draw(self, request: DrawRequest) -> Negatives:
        """Draws for a validated request (composites call this on their components)."""
        ids, log_q, valid, positions = self._draw(request)
        mask = ~hit_mask(ids, request.positives, request.exclude)
        if valid is not None:
            mask &= valid
        return Negatives(ids=ids, log_q=log_q, mask=mask, positions=positions)

    def observe(self, positives: Tensor) -> None:
        """Sees a batch without drawing for it (a mixture component given no columns).

        Samplers with state fed by the batches (a memory bank's queue) update it here, so that
        their state does not depend on whether they drew; others do nothing.
        """
        for component in self.components():
            component.observe(positives)

    def log_prob(
        self, ids: Tensor, positives: Tensor, exclude: Tensor | None = None
    ) -> Tensor | None:
        """The log probability that one draw for each row yields ``ids``, or ``None``.

        Args:
            ids: ``(*, M)`` long candidate ids.
            positives: ``(*)`` the rows' positives (batch-based samplers read the batch here).
            exclude: ``(*, C)`` as in :meth:`sample`.

        Returns:
            ``(*, M)`` float (``-inf`` for ids that cannot be drawn), or ``None`` when the
            sampler has no closed-form distribution (hard negatives).
        """
        return None

    # ------------------------------------------------------------------ strategy hooks
    @abstractmethod
    def _setup(self, counts: Tensor) -> None:
        """Builds tables from ``counts`` ``(V,)`` float64; store them as buffers."""

    @abstractmethod
    def _draw(self, request: DrawRequest) -> Draw:
        """Draws ``(*, K')`` ids (``K' <= K``) with their ``log_q``, on the positives' device."""

    # ------------------------------------------------------------------ validation
    def _check_request(
        self, positives: Tensor, num_negatives: int, anchors: Tensor | None, exclude: Tensor | None
    ) -> None:
        name = type(self).__name__
        if isinstance(num_negatives, bool) or not isinstance(num_negatives, int):
            raise TypeError(f"num_negatives must be an int, got {num_negatives!r}.")
        if num_negatives < 1:
            raise ValueError(f"num_negatives must be >= 1, got {num_negatives}; use K >= 1.")
        if self.vocab_size == 0:
            raise RuntimeError(f"{name} has no tables yet: call sampler.setup(counts) first.")
        if positives.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"positives must hold integer ids, got dtype {positives.dtype}.")
        table = next(iter(self.buffers()), None)
        if table is not None and table.device != positives.device:
            raise RuntimeError(
                f"{name}'s tables are on {table.device} but the positives are on "
                f"{positives.device}; move the sampler with .to(device) (a task's submodules move "
                "with it)."
            )
        if anchors is not None and anchors.shape != positives.shape:
            raise ValueError(
                f"anchors must have the positives' shape {tuple(positives.shape)}, got "
                f"{tuple(anchors.shape)}: one anchor per positive."
            )
        if exclude is not None and exclude.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"exclude must hold integer ids, got dtype {exclude.dtype}.")
        if exclude is not None and (
            exclude.dim() != positives.dim() + 1 or exclude.shape[:-1] != positives.shape
        ):
            raise ValueError(
                f"exclude must have shape (*positives.shape, C), positives being "
                f"{tuple(positives.shape)}; got {tuple(exclude.shape)}. Pad rows with -1."
            )
        check_id_range(
            positives, 0, self.vocab_size, "positive id",
            "the ids must come from the vocabulary the sampler was set up with.",
        )
        if exclude is not None:
            check_id_range(
                exclude, -1, self.vocab_size, "exclude id",
                "the ids must come from the sampler's vocabulary (-1 pads).",
            )

    # ------------------------------------------------------------------ checkpoints
    def get_extra_state(self) -> dict[str, Any]:
        return {**self.stream.state_dict(), "vocab_size": self.vocab_size}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        """Restores a checkpoint; the current rank is kept (see :class:`RandomStream`).
        Checkpoints of nslightning 0.1 name the vocabulary size ``num_items``."""
        self.stream.load_state_dict(state)
        self.vocab_size = int(state.get("vocab_size", state.get("num_items", self.vocab_size)))

    def _load_from_state_dict(  # type: ignore[no-untyped-def]
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, errors
    ) -> None:
        # Tables are sized by the vocabulary, which is only known at setup(): adopt the saved size.
        for name, buffer in self._buffers.items():
            key = prefix + name
            if key in state_dict and buffer is not None and buffer.shape != state_dict[key].shape:
                self._buffers[name] = torch.empty_like(state_dict[key], device=buffer.device)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, errors
        )

    def extra_repr(self) -> str:
        return f"vocab_size={self.vocab_size}, seed={self.seed}"
