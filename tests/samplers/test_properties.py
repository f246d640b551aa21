"""Property-based tests of the sampler contract (:mod:`nslightning.samplers.base`).

Hypothesis draws vocabularies, counts (zeros included), batch shapes, ``K``, ``exclude`` rows
and each sampler's options; every draw is checked against what the contract and the sampler's
docstring promise, with references computed here in float64:

* ``ids``: ``(*, K)`` int64 in ``[0, V)`` (batch-based samplers: ``min(K, N - 1)`` columns for
  in-batch); never a ``never_drawn`` id where the slot counts as a negative (table samplers never
  return one at all);
* ``mask``: ``False`` exactly on accidental hits (the positive or an ``exclude`` id of the row)
  and on empty slots; hard samplers also mask repeats and skipped candidates;
* ``log_q``: finite where the slot is a valid negative, and the sampler's stated distribution;
* ``unique``: no id twice in a row; ``redraw``: no hit unless every drawable id is one;
* the same seed gives the same draws.

Reproducibility (the same for the three property files): ``derandomize=True`` makes the examples
a fixed function of the code (each test's source, and the constants hypothesis collects from the
project's modules), and ``database=None`` keeps no failing examples between runs, so a commit
runs the same cases in CI and on every machine, and a failure reproduces with the same command.
(A ``@seed`` would do the same; derandomize is hypothesis's setting meant for CI and needs no
number to maintain.) The price: editing a test reshuffles its cases, so what must be exercised
gets a strategy that makes it likely (concentrated distributions, small batches, masked rows)
rather than relying on luck. Explore more cases locally with a larger ``MAX_EXAMPLES`` and
``derandomize=False``.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nslightning.samplers import (
    HardNegativeSampler,
    InBatchSampler,
    IndexHardNegativeSampler,
    LogUniformSampler,
    MemoryBankSampler,
    MixedSampler,
    Negatives,
    NegativeSampler,
    UniformSampler,
    UnigramSampler,
)

# The drawn counts are rarely sorted: the log-uniform sampler's warning is not under test.
pytestmark = pytest.mark.filterwarnings("ignore:LogUniformSampler assumes ids sorted")

MAX_EXAMPLES = 40
PROPERTIES = settings(max_examples=MAX_EXAMPLES)  # the rest: the profile in conftest.py
MAX_V = 24
TABLE_KINDS = ("uniform", "unigram", "log-uniform")


# ------------------------------------------------------------------------------ references
def table_probabilities(
    kind: str, counts: list[int], power: float, never_drawn: list[int]
) -> list[float]:
    """The documented distribution of one draw of a table sampler, in float64."""
    size = len(counts)
    if kind == "uniform" or (kind == "unigram" and power == 0):
        weights = [1.0] * size
    elif kind == "unigram":
        weights = [float(c) ** power for c in counts]
    else:  # log-uniform: P(k) = log((k + 2) / (k + 1)) / log(V + 1)
        weights = [math.log((k + 2) / (k + 1)) for k in range(size)]
    for i in never_drawn:
        weights[i] = 0.0
    total = sum(weights)
    return [w / total for w in weights] if total > 0 else weights


def row_hits(positive: int, exclude_row: list[int] | None) -> set[int]:
    """The ids that are accidental hits for a row: its positive and its excluded ids."""
    hits = {positive}
    if exclude_row is not None:
        hits |= {i for i in exclude_row if i >= 0}
    return hits


def reference_mask_of_hits(
    ids: torch.Tensor, positives: torch.Tensor, exclude: torch.Tensor | None
) -> torch.Tensor:
    """``(*, K)`` True where a draw is an accidental hit (a loop, not the library's code)."""
    flat_pos = positives.reshape(-1).tolist()
    flat_ids = ids.reshape(len(flat_pos), ids.shape[-1]).tolist()
    hits = [
        [i in row_hits(p, e) for i in row]
        for row, (p, e) in zip(flat_ids, batch_rows(positives, exclude), strict=True)
    ]
    return torch.tensor(hits, dtype=torch.bool).reshape(ids.shape)


def batch_rows(
    positives: torch.Tensor, exclude: torch.Tensor | None
) -> list[tuple[int, list[int] | None]]:
    """``(positive, exclude_row)`` of every row, as Python values."""
    flat_pos = positives.reshape(-1).tolist()
    if exclude is None:
        return [(p, None) for p in flat_pos]
    flat_exclude = exclude.reshape(len(flat_pos), exclude.shape[-1]).tolist()
    return list(zip(flat_pos, flat_exclude, strict=True))


def rows_of(out: Negatives, positives: torch.Tensor, exclude: torch.Tensor | None):
    """``(ids, mask, log_q, positive, exclude_row)`` per row, as Python lists."""
    rows = positives.numel()
    width = out.ids.shape[-1]
    ids = out.ids.reshape(rows, width).tolist()
    mask = out.mask.reshape(rows, width).tolist()
    log_q = None if out.log_q is None else out.log_q.reshape(rows, width).double().tolist()
    flat_pos = positives.reshape(-1).tolist()
    flat_exc = None if exclude is None else exclude.reshape(rows, exclude.shape[-1]).tolist()
    for r in range(rows):
        yield (
            ids[r], mask[r], None if log_q is None else log_q[r], flat_pos[r],
            None if flat_exc is None else flat_exc[r],
        )


def check_common(
    out: Negatives, positives: torch.Tensor, exclude: torch.Tensor | None, num_items: int,
    columns: int,
) -> torch.Tensor:
    """Shape, dtype, range; returns the reference hit mask."""
    expected = (*positives.shape, columns)
    assert out.ids.shape == expected and out.mask.shape == expected
    assert out.ids.dtype == torch.int64 and out.mask.dtype == torch.bool
    if out.log_q is not None:
        assert out.log_q.shape == expected and out.log_q.dtype.is_floating_point
    if out.ids.numel():
        assert int(out.ids.min()) >= 0 and int(out.ids.max()) < num_items
    hits = reference_mask_of_hits(out.ids, positives, exclude)
    assert not (out.mask & hits).any(), "a hit is marked as a valid negative"
    return hits


def assert_same(a: Negatives, b: Negatives) -> None:
    assert torch.equal(a.ids, b.ids) and torch.equal(a.mask, b.mask)
    if a.log_q is None or b.log_q is None:
        assert a.log_q is None and b.log_q is None
    else:
        assert torch.equal(a.log_q, b.log_q)


# ------------------------------------------------------------------------------ strategies
@st.composite
def batches(
    draw: st.DrawFn, num_items: int, max_rows: int = 12, with_exclude: bool = True
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Positives of shape ``(B,)`` or ``(B1, B2)`` and, maybe, ``exclude`` rows (``-1`` pads)."""
    if draw(st.booleans()):
        shape: tuple[int, ...] = (draw(st.integers(0, max_rows)),)
    else:
        shape = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    rows = math.prod(shape)
    ids = draw(st.lists(st.integers(0, num_items - 1), min_size=rows, max_size=rows))
    positives = torch.tensor(ids, dtype=torch.int64).reshape(shape)
    if draw(st.sampled_from(["int64", "int32"])) == "int32":
        positives = positives.to(torch.int32)
    if not with_exclude or draw(st.booleans()):
        return positives, None
    width = draw(st.integers(0, 3))
    cells = draw(
        st.lists(st.integers(-1, num_items - 1), min_size=rows * width, max_size=rows * width)
    )
    return positives, torch.tensor(cells, dtype=torch.int64).reshape(*shape, width)


@st.composite
def vocabularies(draw: st.DrawFn, min_size: int = 1) -> list[int]:
    """Counts of ``V`` items: small ones (zeros included) and up to two heavy ones, so that
    some distributions are concentrated on one or two items."""
    size = draw(st.integers(min_size, MAX_V))
    counts = draw(st.lists(st.integers(0, 10), min_size=size, max_size=size))
    for i in draw(st.lists(st.integers(0, size - 1), unique=True, max_size=2)):
        counts[i] = draw(st.sampled_from([100, 5000]))
    return counts


def call(
    sampler: NegativeSampler, positives: torch.Tensor, num: int, exclude: torch.Tensor | None,
    scorer=None,
) -> Negatives:
    anchors = positives if scorer is not None else None
    return sampler.sample(positives, num, anchors=anchors, scorer=scorer, exclude=exclude)


def embedding_scorer(num_items: int):
    """A fixed model: dot products of seeded random embeddings (``mine`` too)."""
    generator = torch.Generator().manual_seed(num_items)
    emb = torch.randn(num_items, 4, generator=generator, dtype=torch.float64)

    def scorer(anchors: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        return (emb[anchors.long()].unsqueeze(1) * emb[candidates]).sum(-1).float()

    return scorer, emb


# ------------------------------------------------------------------------------ table samplers
@dataclass
class TableCase:
    kind: str
    counts: list[int]
    power: float
    never_drawn: list[int]
    unique: bool
    redraw: bool
    seed: int

    def make(self) -> NegativeSampler:
        options = {
            "seed": self.seed, "never_drawn": self.never_drawn, "unique": self.unique,
            "redraw": self.redraw,
        }
        if self.kind == "uniform":
            return UniformSampler(**options)  # type: ignore[arg-type]
        if self.kind == "unigram":
            return UnigramSampler(power=self.power, **options)  # type: ignore[arg-type]
        return LogUniformSampler(**options)  # type: ignore[arg-type]

    def probabilities(self) -> list[float]:
        return table_probabilities(self.kind, self.counts, self.power, self.never_drawn)


def check_table_draw(
    case: TableCase, positives: torch.Tensor, exclude: torch.Tensor | None, num: int
) -> None:
    """One call of a set-up table sampler against the contract and its stated distribution."""
    size = len(case.counts)
    probs = case.probabilities()
    sampler, twin = case.make(), case.make()
    sampler.setup(torch.tensor(case.counts))
    twin.setup(torch.tensor(case.counts))
    out = call(sampler, positives, num, exclude)
    hits = check_common(out, positives, exclude, size, num)
    assert torch.equal(out.mask, ~hits), "mask must be False exactly on accidental hits"
    assert out.log_q is not None
    assert_same(call(twin, positives, num, exclude), out)

    for row, mask, log_q, positive, exclude_row in rows_of(out, positives, exclude):
        assert log_q is not None
        assert not set(row) & set(case.never_drawn), "a never_drawn id was drawn"
        assert all(probs[i] > 0 for i in row), "an id outside the distribution's support"
        hit_ids = row_hits(positive, exclude_row)
        hit_mass = sum(probs[i] for i in hit_ids)
        all_hits = all(probs[i] == 0 for i in range(size) if i not in hit_ids)
        if case.unique:
            assert len(set(row)) == len(row), f"unique row repeats an id: {row}"
        if case.redraw and not all_hits:
            assert all(mask), f"redraw left a hit in {row} (hits {hit_ids})"
        # The stated distribution of one draw, renormalised without the row's hits by redraw
        # (a row whose every drawable id is a hit keeps the plain one).
        renorm = 1.0 - hit_mass if case.redraw and not all_hits else 1.0
        for i, value in zip(row, log_q, strict=True):
            assert math.isfinite(value)
            p = probs[i] / renorm
            if not case.unique:
                tolerance = 1e-4 + 1e-6 / renorm
                assert value == pytest.approx(math.log(p), abs=tolerance), (i, row)
            else:
                # Inclusion probability 1 - (1 - p)^T for the T >= K draws that the row took.
                lowest = math.log(-math.expm1(num * math.log1p(-min(p, 1.0)))) if p < 1 else 0.0
                assert lowest - 1e-4 - 1e-6 / renorm <= value <= 1e-6, (i, row, value, lowest)
        if case.unique:
            # One T per row: ids of larger p never get a smaller inclusion probability.
            order = sorted(zip((probs[i] for i in row), log_q, strict=True))
            for (_, low), (_, high) in itertools.pairwise(order):
                assert low <= high + 1e-5
    if not case.unique:
        log_prob = sampler.log_prob(out.ids, positives, exclude)
        assert torch.allclose(log_prob[out.mask], out.log_q[out.mask], atol=1e-6)


@PROPERTIES
@given(data=st.data())
def test_table_samplers_honour_the_contract(data: st.DataObject) -> None:
    kind = data.draw(st.sampled_from(TABLE_KINDS), label="kind")
    counts = data.draw(vocabularies(), label="counts")
    size = len(counts)
    power = data.draw(st.sampled_from([0.0, 0.5, 0.75, 1.0, 2.0]), label="power")
    never_drawn = data.draw(
        st.just([]) | st.lists(st.integers(0, size - 1), unique=True, max_size=size),
        label="never_drawn",
    )
    unique, redraw = data.draw(st.booleans(), label="unique"), data.draw(st.booleans())
    if unique:
        # A heavy item makes the rare ones take (documented) ages to come up distinct.
        counts = [min(c, 10) for c in counts]
    seed = data.draw(st.integers(0, 2**31 - 1), label="seed")
    case = TableCase(kind, counts, power, never_drawn, unique, redraw, seed)
    probs = case.probabilities()
    support = sum(p > 0 for p in probs)
    if support == 0:  # every item has probability zero: documented as a ValueError
        with pytest.raises(ValueError, match="probability zero"):
            case.make().setup(torch.tensor(counts))
        return
    positives, exclude = data.draw(batches(size), label="batch")
    num = data.draw(st.integers(1, 8), label="K")
    if unique and num > support:
        sampler = case.make()
        sampler.setup(torch.tensor(counts))
        with pytest.raises(ValueError, match="distinct"):
            call(sampler, positives, num, exclude)
        num = support  # ...and the most it can draw
    if unique and redraw:
        # Each row needs K distinct drawable ids that are not hits (else a documented error
        # after a long search): keep K within what every row has.
        drawable_hits = [
            sum(1 for i in row_hits(p, e) if probs[i] > 0)
            for p, e in batch_rows(positives, exclude)
        ]
        room = support - max(drawable_hits, default=0)
        if room < 1:
            return
        num = min(num, room)
    check_table_draw(case, positives, exclude, num)


@PROPERTIES
@given(data=st.data())
def test_redraw_leaves_no_hit_when_the_hits_hold_most_of_the_mass(data: st.DataObject) -> None:
    # Positives (and excluded ids) that carry nearly all the probability: a bounded number of
    # rejection rounds is not enough, and the contract still promises no hit while the row has
    # any other drawable id.
    size = data.draw(st.integers(2, 6), label="V")
    heavy = data.draw(st.lists(st.integers(0, size - 1), unique=True, min_size=1, max_size=2))
    counts = data.draw(st.lists(st.integers(0, 2), min_size=size, max_size=size))
    if data.draw(st.booleans(), label="only the heavy ids can be drawn"):
        # Excluding the other heavy id then leaves a row nothing else: it stays masked, with
        # the plain log q (the table's float32 probabilities need not add up to exactly 1).
        counts = [0] * size
    for i in heavy:
        counts[i] = data.draw(st.sampled_from([10**4, 10**6]), label="heavy count")
    power = data.draw(st.sampled_from([0.75, 1.0, 2.0]), label="power")
    never_drawn = data.draw(st.lists(st.integers(0, size - 1), unique=True, max_size=1))
    if all(c == 0 or i in never_drawn for i, c in enumerate(counts)):
        return
    rows = data.draw(st.integers(1, 16), label="rows")
    positives = torch.tensor(data.draw(
        st.lists(st.sampled_from(heavy), min_size=rows, max_size=rows)
    ))
    exclude = None
    if len(heavy) > 1 and data.draw(st.booleans(), label="exclude the other heavy id"):
        exclude = torch.tensor([next(h for h in heavy if h != p) for p in positives.tolist()])
        exclude = exclude.unsqueeze(-1)
    seed = data.draw(st.integers(0, 2**31 - 1), label="seed")
    case = TableCase("unigram", counts, power, never_drawn, False, True, seed)
    check_table_draw(case, positives, exclude, data.draw(st.integers(1, 8), label="K"))


def test_redraw_of_a_dominant_hit_draws_the_others_in_proportion() -> None:
    # The exact draw that takes over after the rejection rounds keeps p renormalised: with the
    # positive holding 1 - 6e-6 of the mass, the others come in the ratio 1 : 2 : 3.
    sampler = UnigramSampler(power=1.0, redraw=True, seed=3)
    sampler.setup(torch.tensor([10**6, 1, 2, 3, 0]))
    out = sampler.sample(torch.zeros(3000, dtype=torch.int64), 4)
    assert out.mask.all()
    counts = torch.bincount(out.ids.reshape(-1), minlength=5).double()
    total = float(counts.sum())
    for item, share in ((1, 1 / 6), (2, 2 / 6), (3, 3 / 6)):
        sigma = math.sqrt(total * share * (1 - share))
        assert abs(float(counts[item]) - total * share) < 5 * sigma
    assert counts[0] == 0 and counts[4] == 0


# ------------------------------------------------------------------------------ in-batch
@PROPERTIES
@given(data=st.data())
def test_in_batch_sampler_honours_the_contract(data: st.DataObject) -> None:
    size = data.draw(st.integers(1, MAX_V), label="V")
    never_drawn = data.draw(st.lists(st.integers(0, size - 1), unique=True, max_size=3))
    all_others = data.draw(st.booleans(), label="all_others")
    seed = data.draw(st.integers(0, 2**31 - 1), label="seed")
    positives, exclude = data.draw(batches(size, max_rows=16), label="batch")
    num = data.draw(st.integers(1, 20), label="K")

    def make() -> InBatchSampler:
        sampler = InBatchSampler(seed=seed, never_drawn=never_drawn, all_others=all_others)
        sampler.setup(torch.ones(size))
        return sampler

    sampler = make()
    out = call(sampler, positives, num, exclude)
    n = positives.numel()
    columns = max(n - 1, 0) if all_others else min(num, max(n - 1, 0))
    hits = check_common(out, positives, exclude, size, columns)
    assert_same(call(make(), positives, num, exclude), out)

    pool = positives.reshape(-1).tolist()
    drawable = [i not in never_drawn for i in pool]
    assert out.log_q is not None
    for r, (row, mask, log_q, positive, _) in enumerate(rows_of(out, positives, exclude)):
        others = pool[:r] + pool[r + 1 :]
        # Drawn without replacement from the other positions of the batch.
        assert not Counter(row) - Counter(others), f"row {row} is not drawn from {others}"
        if columns == n - 1:
            assert row == others, "with K >= N - 1 a row holds every other positive in order"
        valid_candidates = [
            i for i in others if i != positive and i not in never_drawn
        ]
        # Base mask: the own positive and never_drawn ids are never valid; exclude on top.
        base_valid = [i != positive and i not in never_drawn for i in row]
        expected = [v and not h for v, h in zip(base_valid, hits.reshape(n, columns)[r].tolist(),
                                                 strict=True)]
        assert mask == expected
        # A capped row takes K of its valid candidates while it has that many.
        assert sum(base_valid) == min(columns, len(valid_candidates))
        # log_q = count(id) / (N' - c): N' drawable positions, c copies of the own positive.
        population = sum(drawable)
        own = sum(1 for i, d in zip(pool, drawable, strict=True) if d and i == positive)
        for i, valid, value in zip(row, base_valid, log_q, strict=True):
            if not valid:
                continue
            count = sum(1 for j, d in zip(pool, drawable, strict=True) if d and j == i)
            assert value == pytest.approx(math.log(count / (population - own)), abs=1e-5)


# ------------------------------------------------------------------------------ memory bank
@PROPERTIES
@given(data=st.data())
def test_memory_bank_sampler_honours_the_contract(data: st.DataObject) -> None:
    size = data.draw(st.integers(1, MAX_V), label="V")
    bank_size = data.draw(st.integers(1, 20), label="bank size")
    never_drawn = data.draw(st.lists(st.integers(0, size - 1), unique=True, max_size=3))
    seed = data.draw(st.integers(0, 2**31 - 1), label="seed")
    calls = data.draw(st.lists(st.tuples(batches(size), st.integers(1, 8)), min_size=1,
                               max_size=3), label="calls")

    def make() -> MemoryBankSampler:
        sampler = MemoryBankSampler(size=bank_size, seed=seed, never_drawn=never_drawn)
        sampler.setup(torch.ones(size))
        return sampler

    sampler, twin = make(), make()
    queue: deque[int] = deque(maxlen=bank_size)
    for (positives, exclude), num in calls:
        out = call(sampler, positives, num, exclude)
        queue.extend(i for i in positives.reshape(-1).tolist() if i not in never_drawn)
        hits = check_common(out, positives, exclude, size, num)
        assert_same(call(twin, positives, num, exclude), out)
        assert sampler.contents().tolist() == list(queue)
        assert out.log_q is not None
        # Empty slots (nothing could be enqueued yet) are masked; otherwise exactly the hits.
        assert torch.equal(out.mask, ~hits & torch.tensor(len(queue) > 0))
        counts = Counter(queue)
        for row, mask, log_q, _, _ in rows_of(out, positives, exclude):
            for i, valid, value in zip(row, mask, log_q, strict=True):
                if queue:
                    assert i in counts, "an id that is not in the queue"
                if valid:
                    assert i not in never_drawn
                    assert value == pytest.approx(math.log(counts[i] / len(queue)), abs=1e-5)


# ------------------------------------------------------------------------------ mixtures
COMPONENTS = ("uniform", "unigram", "log-uniform", "in-batch", "memory-bank")


def make_component(name: str) -> NegativeSampler:
    if name == "uniform":
        return UniformSampler()
    if name == "unigram":
        return UnigramSampler(power=0.75)
    if name == "log-uniform":
        return LogUniformSampler()
    if name == "in-batch":
        return InBatchSampler()
    return MemoryBankSampler(size=8)


@PROPERTIES
@given(data=st.data())
def test_mixed_sampler_honours_the_contract(data: st.DataObject) -> None:
    counts = data.draw(vocabularies(), label="counts")
    if not any(counts):
        counts[0] = 1  # unigram^0.75 needs a non-zero count
    size = len(counts)
    names = data.draw(st.lists(st.sampled_from(COMPONENTS), min_size=1, max_size=3))
    raw = data.draw(st.lists(st.integers(1, 10), min_size=len(names), max_size=len(names)))
    shares = [r / sum(raw) for r in raw]
    seed = data.draw(st.integers(0, 2**31 - 1), label="seed")
    positives, exclude = data.draw(batches(size), label="batch")
    num = data.draw(st.integers(1, 10), label="K")

    def make() -> MixedSampler:
        sampler = MixedSampler([make_component(n) for n in names], shares, seed=seed)
        sampler.setup(torch.tensor(counts))
        return sampler

    sampler, twin, splitter = make(), make(), make()
    out = call(sampler, positives, num, exclude)
    split = splitter.split(num)  # the same split stream: the columns of each component
    assert sum(split) == num
    n = positives.numel()
    drawn = [
        min(c, max(n - 1, 0)) if name == "in-batch" else c
        for name, c in zip(names, split, strict=True)
    ]
    hits = check_common(out, positives, exclude, size, sum(drawn))
    assert_same(call(twin, positives, num, exclude), out)
    # Columns come in component order; each slot is valid unless a hit or an empty slot.
    start = 0
    empty = torch.zeros_like(out.mask)
    for component, name, width in zip(sampler.components(), names, drawn, strict=True):
        part = slice(start, start + width)
        if name == "memory-bank":
            assert isinstance(component, MemoryBankSampler)
            empty[..., part] = int(component.filled) == 0
        start += width
    assert torch.equal(out.mask, ~hits & ~empty)
    # log_q: log Σ_c (n_c / n) q_c(id) over the columns each component drew.
    assert out.log_q is not None
    total = max(sum(drawn), 1)
    terms = []
    for component, width in zip(sampler.components(), drawn, strict=True):
        if width == 0:
            continue
        log_prob = component.log_prob(out.ids, positives, exclude)
        assert log_prob is not None
        terms.append(log_prob.double() + math.log(width / total))
    if terms:
        expected = torch.logsumexp(torch.stack(terms), 0)
        valid = out.mask
        assert torch.isfinite(out.log_q[valid]).all()
        assert torch.allclose(out.log_q[valid].double(), expected[valid], atol=1e-5)
        assert (out.log_q[valid] <= 1e-6).all()


# ------------------------------------------------------------------------------ hard negatives
@PROPERTIES
@given(data=st.data())
def test_hard_negative_sampler_honours_the_contract(data: st.DataObject) -> None:
    counts = data.draw(vocabularies(min_size=2), label="counts")
    if not any(counts):
        counts[0] = 1
    size = len(counts)
    mode = data.draw(st.sampled_from(["pool-uniform", "pool-unigram", "pool-in-batch", "index"]))
    selection = data.draw(st.sampled_from(["topk", "softmax"]), label="selection")
    skip_top = data.draw(st.integers(0, 2), label="skip_top")
    num = data.draw(st.integers(1, 4), label="K")
    seed = data.draw(st.integers(0, 2**31 - 1), label="seed")
    never_drawn: list[int] = []
    if mode == "index":
        never_drawn = data.draw(st.lists(st.integers(0, size - 1), unique=True,
                                         max_size=size - 1))
        minable = size - len(never_drawn)
        pool_size = data.draw(st.integers(1, minable), label="pool_size")
    else:
        pool_size = data.draw(st.integers(1, 12), label="pool_size")
    scorer, emb = embedding_scorer(size)
    # Small batches too: an in-batch base then gives fewer than pool_size (even than
    # skip_top) candidates.
    rows = 3 if mode == "pool-in-batch" else 12
    positives, exclude = data.draw(batches(size, max_rows=rows), label="batch")

    def make() -> HardNegativeSampler | IndexHardNegativeSampler:
        sampler: HardNegativeSampler | IndexHardNegativeSampler
        if mode == "index":
            sampler = IndexHardNegativeSampler(
                pool_size=pool_size, selection=selection, temperature=0.5, skip_top=skip_top,
                chunk_size=5, never_drawn=never_drawn or None, seed=seed,
            )
        else:
            bases: dict[str, Callable[[], NegativeSampler]] = {
                "pool-uniform": UniformSampler, "pool-in-batch": InBatchSampler,
                "pool-unigram": lambda: UnigramSampler(power=0.75),
            }
            sampler = HardNegativeSampler(
                bases[mode](), pool_size=pool_size, selection=selection, temperature=0.5,
                skip_top=skip_top, seed=seed,
            )
        sampler.setup(torch.tensor(counts))
        return sampler

    sampler = make()
    if num + skip_top > pool_size:
        with pytest.raises(ValueError, match="pool_size"):
            call(sampler, positives, num, exclude, scorer)
        return
    out = call(sampler, positives, num, exclude, scorer)
    columns = out.ids.shape[-1]
    if mode == "pool-in-batch":
        pool_columns = min(pool_size, max(positives.numel() - 1, 0))
        assert columns == min(num, max(pool_columns - skip_top, 0))
    else:
        assert columns == num
    check_common(out, positives, exclude, size, columns)
    assert out.log_q is None, "hard negatives are chosen by score: no log_q"
    assert_same(call(make(), positives, num, exclude, scorer), out)
    for row, mask, _, positive, exclude_row in rows_of(out, positives, exclude):
        valid = [i for i, m in zip(row, mask, strict=True) if m]
        assert len(valid) == len(set(valid)), f"repeated valid hard negative in {row}"
        assert not set(valid) & set(never_drawn)
        if mode == "index" and selection == "topk" and skip_top == 0 and valid:
            # Top-k: no usable candidate of the anchor's pool scores above a chosen one.
            anchor = positive  # the tests' anchors are the positives
            assert isinstance(sampler, IndexHardNegativeSampler)
            pool = sampler.index[anchor].tolist()
            scores = (emb[anchor] * emb).sum(-1).float()
            hit_ids = row_hits(positive, exclude_row)
            usable = [i for i in set(pool) - set(row) if i not in hit_ids | set(never_drawn)]
            if usable:
                assert min(float(scores[i]) for i in valid) >= max(
                    float(scores[i]) for i in usable
                ) - 1e-6
