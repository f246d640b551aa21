"""Samplers that draw every negative independently from one fixed distribution over the items.

They share the options that only make sense for such a distribution: ids that are never drawn,
draws without replacement (``unique``), and redrawing accidental hits instead of masking them.
Each option keeps ``log_q`` exact for what is actually drawn.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence

import torch
from torch import Tensor

from nslightning.samplers.alias import build_alias_table, draw_from_alias
from nslightning.samplers.base import Draw, DrawRequest, LogQKind, NegativeSampler, hit_mask
from nslightning.samplers.batch_counts import repeated_in_row

MAX_REDRAW_ROUNDS = 64
UNIQUE_STREAM_LIMIT = 1 << 16  # draws per row before unique sampling gives up


class TableSampler(NegativeSampler):
    """Independent draws from ``p = weights / sum(weights)`` over the ``V`` items.

    Args:
        seed: base seed of the generator (rank ``r`` uses ``seed + r``).
        never_drawn: ids that are never drawn (padding, ``<unk>``): their probability is zero
            and the others are renormalised.
        unique: no id twice in a row's ``K`` negatives. Draws are taken with replacement until
            ``K`` distinct ids are seen after ``T`` draws (TensorFlow's ``unique=True``), and
            ``log_q`` is then ``log(1 - (1 - p)^T)``, the probability that the id is among
            ``T`` independent draws: TensorFlow's expected count for sampled softmax, an
            approximation of the inclusion probability (``T`` itself depends on the draws).
            Costs a sort per row and host syncs for the rows that need more draws.
        redraw: an accidental hit (the positive, or an id of ``exclude``) is drawn again instead
            of masked; ``log_q`` is then ``log(p / (1 - P(hits of the row)))``, the exact
            probability of what was drawn. Rows whose every drawable id is a hit stay masked.
            Each redraw round reads the number of hits back (a host sync on accelerators).

    Capabilities (see :class:`~nslightning.samplers.NegativeSampler`): plain draws have a
    :attr:`fixed_distribution` with a ``"per_draw"`` ``log_q``; ``redraw`` renormalises each
    row's distribution (still per draw, but row-dependent) and ``unique`` gives inclusion
    probabilities, so either option makes the distribution no longer fixed.

    Examples:
        >>> import torch
        >>> from nslightning.samplers import UniformSampler
        >>> plain, unique = UniformSampler(seed=0), UniformSampler(unique=True, seed=0)
        >>> plain.fixed_distribution, plain.log_q_kind
        (True, 'per_draw')
        >>> unique.fixed_distribution, unique.log_q_kind
        (False, 'inclusion')
        >>> unique.setup(torch.ones(5))
        >>> negatives = unique.sample(torch.tensor([0, 1]), 4)
        >>> [len(set(row)) for row in negatives.ids.tolist()]  # no id twice in a row
        [4, 4]
    """

    log_probs: Tensor
    accept: Tensor
    alias: Tensor
    closed_form = False
    """Subclasses that draw without tables (when no id is excluded) set this and override
    :meth:`_closed_form_draw`."""

    def __init__(
        self,
        seed: int = 0,
        never_drawn: Sequence[int] | None = None,
        unique: bool = False,
        redraw: bool = False,
    ) -> None:
        super().__init__(seed=seed)
        self._set_never_drawn(never_drawn)
        if self.never_drawn and self.never_drawn[0] < 0:
            raise ValueError(f"never_drawn ids must be >= 0, got {self.never_drawn[0]}.")
        self.unique = bool(unique)
        self.redraw = bool(redraw)
        self.support = 0
        self.register_buffer("log_probs", torch.empty(0))
        self.register_buffer("accept", torch.empty(0))
        self.register_buffer("alias", torch.empty(0, dtype=torch.int64))

    @abstractmethod
    def _weights(self, counts: Tensor) -> Tensor:
        """``(V,)`` float64 non-negative weights from ``counts`` ``(V,)``."""

    def _closed_form_draw(self, num: int, generator: torch.Generator) -> Tensor:
        """``(num,)`` ids drawn without tables (only used when ``closed_form``)."""
        raise NotImplementedError

    def _setup(self, counts: Tensor) -> None:
        weights = self._weights(counts).clone()
        if self.never_drawn:
            if self.never_drawn[-1] >= weights.numel():
                raise ValueError(
                    f"never_drawn id {self.never_drawn[-1]} is out of range for a vocabulary of "
                    f"{weights.numel()} items."
                )
            weights[self.never_drawn] = 0.0
        total = weights.sum()
        if not total > 0:
            raise ValueError(
                f"{type(self).__name__}.setup: every item has probability zero (all counts are "
                "zero, or never_drawn covers them), so nothing can be drawn; build the "
                "vocabulary from a non-empty corpus."
            )
        probs = weights / total
        self.support = int((probs > 0).sum())
        device = self.log_probs.device
        self.log_probs = probs.log().to(device=device, dtype=torch.float32)
        if self.closed_form and not self.never_drawn:
            self.accept = torch.empty(0, device=device)
            self.alias = torch.empty(0, dtype=torch.int64, device=device)
        else:
            accept, alias = build_alias_table(probs)
            self.accept = accept.to(device=device, dtype=torch.float32)
            self.alias = alias.to(device)

    @property
    def fixed_distribution(self) -> bool:  # type: ignore[override]  # set by the options
        """``True`` unless ``unique`` or ``redraw`` (see the class docstring)."""
        return not (self.unique or self.redraw)

    @property
    def log_q_kind(self) -> LogQKind:  # type: ignore[override]  # set by the options
        """``"inclusion"`` with ``unique``, else ``"per_draw"``."""
        return "inclusion" if self.unique else "per_draw"

    def _load_from_state_dict(  # type: ignore[no-untyped-def]
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, errors
    ) -> None:
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, errors
        )
        self.support = int(torch.isfinite(self.log_probs).sum())

    def probabilities(self) -> Tensor:
        """``(V,)`` float64, the distribution of one draw (before any redraw)."""
        return self.log_probs.double().exp()

    # ------------------------------------------------------------------ drawing
    def draw_ids(self, num: int, generator: torch.Generator) -> Tensor:
        """``(num,)`` independent ids from the table's distribution."""
        if self.accept.numel() == 0:
            return self._closed_form_draw(num, generator)
        return draw_from_alias(self.accept, self.alias, (num,), generator)

    def _draw(self, request: DrawRequest) -> Draw:
        positives, exclude = request.positives, request.exclude
        shape = (*positives.shape, request.num_negatives)
        if self.unique:
            return self._draw_unique(request)
        ids = self.draw_ids(positives.numel() * request.num_negatives, request.generator)
        ids = ids.view(shape)
        if self.redraw:
            self._redraw_hits(ids, positives, exclude, request.generator)
        return Draw(ids, self._draw_log_q(ids, positives, exclude))

    def _draw_log_q(self, ids: Tensor, positives: Tensor, exclude: Tensor | None) -> Tensor:
        """``(*, M)`` log probability of one draw of ``ids``, renormalised by ``redraw``."""
        log_q = self.log_probs.index_select(0, ids.reshape(-1)).view(ids.shape)
        if self.redraw:
            log_q = log_q - self._log1m_hit_mass(positives, exclude).unsqueeze(-1)
        return log_q

    def _redraw_hits(
        self, ids: Tensor, positives: Tensor, exclude: Tensor | None, generator: torch.Generator
    ) -> None:
        """Replaces accidental hits in ``ids`` ``(*, K)`` by fresh draws, in place: rounds of
        redraws, then an exact draw without the row's hits for any still left (rows whose hits
        hold nearly all the probability)."""
        for _ in range(MAX_REDRAW_ROUNDS):
            hits = hit_mask(ids, positives, exclude)
            num_hits = int(hits.sum())
            if num_hits == 0:
                return
            ids[hits] = self.draw_ids(num_hits, generator)
        hits = hit_mask(ids, positives, exclude)
        if bool(hits.any()):
            ids[hits] = self._draw_without_hits(ids[hits], hits, positives, exclude, generator)

    def _draw_without_hits(
        self,
        drawn: Tensor,
        hits: Tensor,
        positives: Tensor,
        exclude: Tensor | None,
        generator: torch.Generator,
    ) -> Tensor:
        """``(H,)`` ids for the ``H`` slots ``hits`` ``(*, K)``, each drawn from ``p`` without
        its row's hits: the inverse CDF, stepping over the row's sorted hits. A slot keeps its
        ``drawn`` hit where the row has nothing else to draw (it stays masked)."""
        members = positives.long().unsqueeze(-1)
        if exclude is not None:
            members = torch.cat([members, exclude.long()], dim=-1)
        members = members.sort(dim=-1).values
        members = members.unsqueeze(-2).expand(*hits.shape, members.shape[-1])[hits]  # (H, M)
        distinct = members >= 0
        distinct[:, 1:] &= members[:, 1:] != members[:, :-1]
        probs = self.log_probs.double().exp()
        cdf = probs.cumsum(0)
        mass = probs[members.clamp_min(0)] * distinct
        rest = (cdf[-1] - mass.sum(-1)).clamp_min(0.0)
        u = torch.rand(rest.shape, device=rest.device, generator=generator, dtype=torch.float64)
        u = u * rest
        ids = torch.searchsorted(cdf, u, right=True)  # the first id whose CDF passes u
        for column in range(members.shape[1]):  # a hit at or before it: step over its mass
            u = u + mass[:, column] * (distinct[:, column] & (members[:, column] <= ids))
            ids = torch.searchsorted(cdf, u, right=True)
        ids = ids.clamp_max(self.vocab_size - 1)
        ok = (probs[ids] > 0) & ~(ids.unsqueeze(-1) == members).any(-1)
        return torch.where(ok, ids, drawn)

    def _log1m_hit_mass(self, positives: Tensor, exclude: Tensor | None) -> Tensor:
        """``(*)`` float32 ``log(1 - P(row's hits))``: the renormaliser of redrawn rows (0 for a
        row that is all hits)."""
        members = positives.long().unsqueeze(-1)
        if exclude is not None:
            members = torch.cat([members, exclude.long()], dim=-1)
        members = members.sort(dim=-1).values
        distinct = members >= 0
        distinct[..., 1:] &= members[..., 1:] != members[..., :-1]
        probs = self.log_probs[members.clamp_min(0)].double().exp() * distinct
        log1m = torch.log1p(-probs.sum(-1).clamp(max=1.0)).float()
        # A row whose every drawable id is a hit cannot be renormalised: its draws stay hits.
        # Counted, not read off the sum: float32 tables rarely add up to exactly 1.
        every = (probs > 0).sum(-1) >= self.support
        return log1m.masked_fill(torch.isinf(log1m) | every, 0.0)

    def _draw_unique(self, request: DrawRequest) -> Draw:
        positives, exclude, num = request.positives, request.exclude, request.num_negatives
        if num > self.support:
            raise ValueError(
                f"unique=True cannot draw {num} distinct ids: only {self.support} items can be "
                "drawn; lower num_negatives or set unique=False."
            )
        rows = positives.numel()
        flat_positives = positives.reshape(rows)
        flat_exclude = None if exclude is None else exclude.reshape(rows, exclude.shape[-1])
        ids = positives.new_empty((rows, num), dtype=torch.int64)
        tries = torch.empty(rows, device=positives.device, dtype=torch.float64)
        pending = torch.arange(rows, device=positives.device)
        stream = self.draw_ids(rows * 2 * num, request.generator).view(rows, 2 * num)
        while pending.numel() > 0:
            skip = None
            if self.redraw:
                rows_exclude = None if flat_exclude is None else flat_exclude[pending]
                skip = hit_mask(stream, flat_positives[pending], rows_exclude)
            chosen, row_tries, done = first_unique(stream, num, skip)
            ids[pending[done]] = chosen
            tries[pending[done]] = row_tries[done]
            pending, stream = pending[~done], stream[~done]
            if pending.numel() == 0:
                break
            if stream.shape[1] >= UNIQUE_STREAM_LIMIT:
                raise RuntimeError(
                    f"unique=True found fewer than {num} distinct ids in {stream.shape[1]} draws "
                    "for some rows: they have fewer drawable ids that are not hits than that, "
                    "or the distribution is too concentrated; lower num_negatives (or the "
                    "power of a UnigramSampler), or drop redraw."
                )
            more = self.draw_ids(stream.numel(), request.generator).view(stream.shape)
            stream = torch.cat([stream, more], dim=1)
        shape = (*positives.shape, num)
        log_p = self.log_probs.index_select(0, ids.view(-1)).view(rows, num).double()
        if self.redraw:
            log_p = log_p - self._log1m_hit_mass(flat_positives, flat_exclude).double()[:, None]
        # Inclusion probability after T draws: 1 - (1 - p)^T, computed stably.
        log_q = torch.log(-torch.expm1(tries[:, None] * torch.log1p(-log_p.exp().clamp(max=1.0))))
        return Draw(ids.view(shape), log_q.float().view(shape))

    def log_prob(self, ids: Tensor, positives: Tensor, exclude: Tensor | None = None) -> Tensor:
        """Log probability of one draw (``unique`` aside), redraw renormalisation included."""
        log_q = self._draw_log_q(ids, positives, exclude)
        if self.redraw:  # a hit is never what a redrawn row ends with
            log_q = log_q.masked_fill(hit_mask(ids, positives, exclude), float("-inf"))
        return log_q

    def extra_repr(self) -> str:
        options = [
            f"{name}={value}"
            for name, value in (
                ("never_drawn", self.never_drawn), ("unique", self.unique), ("redraw", self.redraw)
            )
            if value
        ]
        return ", ".join([*options, super().extra_repr()])


def first_unique(
    stream: Tensor, num: int, skip: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """The first ``num`` distinct ids of each row of a stream of draws.

    Args:
        stream: ``(R, M)`` ids in draw order.
        num: distinct ids wanted per row.
        skip: ``(R, M)`` bool draws to ignore (redrawn hits), or ``None``.

    Returns:
        ``chosen (R', num)`` for the ``R'`` rows that have them (in row order), ``tries (R,)``
        float64 draws consumed up to the ``num``-th distinct id (skipped draws excluded), and
        ``done (R,)`` bool.
    """
    first = ~repeated_in_row(stream)
    if skip is not None:
        first &= ~skip
    rank = first.cumsum(dim=1)
    done = rank[:, -1] >= num
    take = first & (rank <= num)
    chosen = stream[done][take[done]].view(-1, num)
    last = (take & (rank == num)).int().argmax(dim=1)
    consumed = last + 1
    if skip is not None:
        consumed = consumed - skip.cumsum(dim=1).gather(1, last[:, None]).squeeze(1)
    return chosen, consumed.double(), done
