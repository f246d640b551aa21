"""The contract every negative sampler in ``nslightning.samplers`` must honour.

Every sampler (and every option of the table samplers) runs through the same tests. Where a
strategy legitimately differs from the plain table samplers, the expectation follows from what
the sampler declares (its capabilities, see ``NegativeSampler``), not from its class:

* ``batch_based`` samplers whose candidates all come from the batches (in-batch, memory bank)
  draw from the positives themselves;
* samplers that do not ``draws_from_items()`` (in-batch, a mixture with it) take ``K`` as a cap
  and may return fewer columns;
* ``log_q`` is ``None`` exactly when ``log_q_kind`` is; ``fixed_distribution`` samplers give the
  ``log_q`` of one row-independent distribution, its ``log_prob``, and draw from it;
* samplers that ``needs_scorer`` (hard negatives) are given ``anchors=`` and ``scorer=``, refuse
  to draw without them, and choose by score: duplicates and slots the pool cannot fill are masked
  too;
* composites (``components()``: mixture, hard pool mode) derive their components' seeds from
  their own seed, so "seed 12 at rank 0 == seed 11 at rank 1" only holds for basic samplers.

Two facts are about options, not capabilities: redraw samplers never return a hit at all, and
top-k over a fixed index with a fixed scorer involves no randomness.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from nslightning.samplers import (
    HardNegativeSampler,
    InBatchSampler,
    IndexHardNegativeSampler,
    LogUniformSampler,
    MemoryBankSampler,
    MixedSampler,
    Negatives,
    NegativeSampler,
    TableSampler,
    UniformSampler,
    UnigramSampler,
)
from tests.samplers.checkpoints import saved_and_loaded

# The counts are not sorted: the log-uniform sampler warns about it, which is not under test here.
pytestmark = pytest.mark.filterwarnings("ignore:LogUniformSampler assumes ids sorted")

COUNTS = torch.tensor([5.0, 0.0, 3.0, 10.0, 1.0, 7.0, 2.0, 4.0])
V = COUNTS.numel()
NEVER_DRAWN = [0, 4]
BANK_SIZE = 16
HARD_POOL = 8  # pool mode: candidates drawn from the base per row
INDEX_POOL = 7  # index mode: best items of the vocabulary kept per anchor (V = 8)

Factory = Callable[[int], NegativeSampler]
TableFactory = Callable[..., TableSampler]

# A fixed model for the hard samplers: dot products of a seeded random embedding table.
EMBEDDINGS = torch.randn(V, 4, generator=torch.Generator().manual_seed(1234))


def scorer(anchors: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    return (EMBEDDINGS[anchors.long()].unsqueeze(1) * EMBEDDINGS[candidates]).sum(-1)


TABLES: dict[str, TableFactory] = {
    "uniform": UniformSampler,
    "unigram": lambda **kw: UnigramSampler(power=0.75, **kw),
    "log-uniform": LogUniformSampler,
}
TABLE_OPTIONS: dict[str, dict[str, object]] = {
    "never": {"never_drawn": NEVER_DRAWN},
    "unique": {"unique": True},
    "redraw": {"redraw": True},
    "unique-redraw": {"unique": True, "redraw": True},
}


def table_factory(table: TableFactory, options: dict[str, object]) -> Factory:
    return lambda seed: table(seed=seed, **options)


FACTORIES: dict[str, Factory] = {
    "uniform": lambda seed: UniformSampler(seed=seed),
    "unigram-0": lambda seed: UnigramSampler(power=0.0, seed=seed),
    "unigram-0.5": lambda seed: UnigramSampler(power=0.5, seed=seed),
    "unigram-0.75": lambda seed: UnigramSampler(power=0.75, seed=seed),
    "unigram-1": lambda seed: UnigramSampler(power=1.0, seed=seed),
    "log-uniform": lambda seed: LogUniformSampler(seed=seed),
    **{
        f"{table}-{option}": table_factory(TABLES[table], kwargs)
        for table in TABLES
        for option, kwargs in TABLE_OPTIONS.items()
    },
    "in-batch": lambda seed: InBatchSampler(seed=seed),
    "memory-bank": lambda seed: MemoryBankSampler(size=BANK_SIZE, seed=seed),
    "mixed-in-batch-unigram": lambda seed: MixedSampler(
        [InBatchSampler(), UnigramSampler(power=0.75)], [0.5, 0.5], seed=seed
    ),
    "mixed-uniform-log-uniform": lambda seed: MixedSampler(
        [UniformSampler(), LogUniformSampler()], [0.3, 0.7], seed=seed
    ),
    "hard-pool": lambda seed: HardNegativeSampler(
        UnigramSampler(power=0.75), pool_size=HARD_POOL, seed=seed
    ),
    "hard-pool-in-batch": lambda seed: HardNegativeSampler(
        InBatchSampler(), pool_size=HARD_POOL, seed=seed
    ),
    "hard-index-topk": lambda seed: IndexHardNegativeSampler(
        pool_size=INDEX_POOL, selection="topk", chunk_size=3, seed=seed
    ),
    "hard-index-softmax": lambda seed: IndexHardNegativeSampler(
        pool_size=INDEX_POOL, selection="softmax", temperature=0.5, chunk_size=3, seed=seed
    ),
}

# Options, not capabilities: redraw=True never returns a hit; top-k over a fixed index,
# re-scored by a fixed scorer, involves no randomness.
REDRAW = {name for name in FACTORIES if name.endswith("redraw")}
DETERMINISTIC = {"hard-index-topk"}


@cache
def declared(name: str) -> NegativeSampler:
    """A fresh sampler of the factory, for the capabilities it declares (never drawn from)."""
    return FACTORIES[name](0)


def needs_scorer(name: str) -> bool:
    return declared(name).needs_scorer


def caps_columns(name: str) -> bool:
    """``K`` is a cap: the call may return fewer columns (in-batch, a mixture with it)."""
    return not declared(name).draws_from_items()


def is_composite(name: str) -> bool:
    return any(True for _ in declared(name).components())


def leaves(sampler: NegativeSampler) -> list[NegativeSampler]:
    """The basic samplers a sampler is built from (itself when it has no components)."""
    parts = list(sampler.components())
    return [leaf for part in parts for leaf in leaves(part)] if parts else [sampler]


def only_batch_candidates(name: str) -> bool:
    """Every candidate comes from the batches: the sampler and all its parts are batch-based."""
    return all(leaf.batch_based for leaf in leaves(declared(name)))


CHECKPOINT_PARAMS = [pytest.param(name) for name in FACTORIES]


@pytest.fixture(params=sorted(FACTORIES))
def name(request: pytest.FixtureRequest) -> str:
    return request.param


def make(name: str, seed: int = 0, setup: bool = True) -> NegativeSampler:
    sampler = FACTORIES[name](seed)
    if setup:
        sampler.setup(COUNTS)
    return sampler


def draw(
    sampler: NegativeSampler,
    positives: torch.Tensor,
    num_negatives: int,
    exclude: torch.Tensor | None = None,
) -> Negatives:
    """Every sampling call of the contract: anchors and a scorer for all (most ignore them)."""
    return sampler.sample(
        positives, num_negatives, anchors=positives, scorer=scorer, exclude=exclude
    )


def positives_of(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    return torch.randint(0, V, shape, generator=torch.Generator().manual_seed(seed))


def exclude_of(positives: torch.Tensor, width: int = 3, seed: int = 0) -> torch.Tensor:
    """``(*, width)`` random ids per row with ``-1`` padding, repeats and the positive itself."""
    gen = torch.Generator().manual_seed(seed)
    exclude = torch.randint(0, V, (*positives.shape, width), generator=gen)
    pad = torch.rand(exclude.shape, generator=gen) < 0.2
    exclude[pad] = -1
    own = torch.rand(positives.shape, generator=gen) < 0.2
    exclude[..., 0] = torch.where(own, positives, exclude[..., 0])
    return exclude


def reference_hits(
    ids: torch.Tensor, positives: torch.Tensor, exclude: torch.Tensor | None = None
) -> torch.Tensor:
    """``(*, K)`` True where a draw equals the row's positive or one of its excluded ids."""
    hits = ids == positives.long().unsqueeze(-1)
    if exclude is not None:
        for column in range(exclude.shape[-1]):
            hits |= ids == exclude[..., column].long().unsqueeze(-1)
    return hits


def column_bounds(name: str, rows: int, num_negatives: int) -> tuple[int, int]:
    """The number of columns a call may return."""
    if caps_columns(name):
        # K caps the batch's N - 1 other positions (in-batch, or a mixture's in-batch share).
        return min(num_negatives, rows - 1), num_negatives
    return num_negatives, num_negatives


def check_mask(
    name: str, out: Negatives, positives: torch.Tensor, exclude: torch.Tensor | None = None
) -> None:
    """``mask`` is False exactly on accidental hits (hard samplers: at least on them)."""
    hits = reference_hits(out.ids, positives, exclude)
    assert not (out.mask & hits).any()
    if needs_scorer(name):
        # Hard samplers also mask duplicates of the pool and slots it could not fill; the valid
        # negatives of a row are distinct.
        flat_ids = out.ids.reshape(positives.numel(), out.ids.shape[-1])
        flat_mask = out.mask.reshape(flat_ids.shape)
        for row_ids, row_mask in zip(flat_ids, flat_mask, strict=True):
            valid = row_ids[row_mask].tolist()
            assert len(valid) == len(set(valid))
    else:
        assert torch.equal(out.mask, ~hits)
    if name in REDRAW:
        assert not hits.any()


def assert_same(a: Negatives, b: Negatives) -> None:
    assert torch.equal(a.ids, b.ids)
    assert torch.equal(a.mask, b.mask)
    if a.log_q is None or b.log_q is None:
        assert a.log_q is None and b.log_q is None
    else:
        assert torch.equal(a.log_q, b.log_q)


def test_every_sampler_and_option_is_covered():
    kinds = {type(declared(name)) for name in FACTORIES}
    assert kinds == {
        UniformSampler, UnigramSampler, LogUniformSampler, InBatchSampler, MemoryBankSampler,
        MixedSampler, HardNegativeSampler, IndexHardNegativeSampler,
    }
    assert len(REDRAW) == 6 and set(FACTORIES) >= DETERMINISTIC
    # Every value of every capability is exercised by some sampler.
    samplers = [declared(name) for name in FACTORIES]
    assert {s.log_q_kind for s in samplers} == {"per_draw", "inclusion", None}
    for capability in ("fixed_distribution", "needs_scorer", "batch_based"):
        assert {getattr(s, capability) for s in samplers} == {True, False}, capability
    assert {s.draws_from_items() for s in samplers} == {True, False}
    assert any(is_composite(name) for name in FACTORIES)


@pytest.mark.parametrize("shape", [(6,), (4, 3), (1,)])
@pytest.mark.parametrize("num_negatives", [1, 5])
def test_shapes_dtypes_device_and_mask(name: str, shape: tuple[int, ...], num_negatives: int):
    sampler = make(name)
    positives = positives_of(shape)
    out = draw(sampler, positives, num_negatives)
    low, high = column_bounds(name, positives.numel(), num_negatives)
    columns = out.ids.shape[-1]
    assert low <= columns <= high
    expected = (*shape, columns)
    assert out.ids.shape == expected
    assert out.mask.shape == expected
    assert out.ids.dtype == torch.int64
    assert out.mask.dtype == torch.bool
    for tensor in (out.ids, out.mask):
        assert tensor.device == positives.device
    if sampler.log_q_kind is None:
        # Chosen by score, not drawn from a known distribution.
        assert out.log_q is None
    else:
        assert out.log_q is not None and out.log_q.shape == expected
        assert out.log_q.dtype.is_floating_point
        assert out.log_q.device == positives.device
        assert torch.isfinite(out.log_q).all()
        assert (out.log_q <= 0).all()
    check_mask(name, out, positives)
    if out.ids.numel():
        assert int(out.ids.min()) >= 0 and int(out.ids.max()) < V


def test_mask_flags_accidental_hits(name: str):
    # Many draws against one positive: some hits are certain, and they are exactly the False.
    sampler = make(name)
    positives = torch.full((500,), 3, dtype=torch.int64)
    out = draw(sampler, positives, 4)
    hits = out.ids == 3
    if only_batch_candidates(name):
        # Every candidate (the batch, or the queue it filled) is the positive: all are hits.
        assert hits.all() and not out.mask.any()
    elif name in REDRAW:
        # Hits are redrawn while the row has other candidates.
        assert not hits.any() and out.mask.all()
    elif needs_scorer(name):
        # Chosen by score among the pool's valid candidates (check_mask: never a hit).
        assert out.mask.any()
    else:
        assert (~out.mask).any() and out.mask.any()
        assert torch.equal(~out.mask, hits)
    check_mask(name, out, positives)


def test_int32_positives_are_accepted(name: str):
    sampler = make(name)
    positives = positives_of((5,)).to(torch.int32)
    out = draw(sampler, positives, 3)
    assert out.ids.dtype == torch.int64
    check_mask(name, out, positives)
    if not needs_scorer(name):
        assert torch.equal(out.mask, out.ids != positives.long().unsqueeze(-1))


def test_same_seed_same_draws_different_seed_different_draws(name: str):
    positives = positives_of((64,))
    first, second, other = make(name, seed=7), make(name, seed=7), make(name, seed=8)
    for _ in range(3):  # consecutive draws stay in lock-step
        assert_same(draw(first, positives, 5), draw(second, positives, 5))
    fresh_a = draw(make(name, seed=7), positives, 5).ids
    other_ids = draw(other, positives, 5).ids
    if name in DETERMINISTIC:
        assert torch.equal(fresh_a, other_ids)
    else:
        assert not torch.equal(fresh_a, other_ids)


def test_consecutive_draws_differ(name: str):
    sampler = make(name, seed=1)
    positives = positives_of((64,))  # K = 5 < N - 1: in-batch chooses at random too
    first, second = draw(sampler, positives, 5).ids, draw(sampler, positives, 5).ids
    if name in DETERMINISTIC:
        assert torch.equal(first, second)
    else:
        assert not torch.equal(first, second)


def test_in_batch_is_deterministic_when_k_covers_the_batch():
    positives = positives_of((6,))
    a, b = make("in-batch", seed=0), make("in-batch", seed=1)
    first = draw(a, positives, 5).ids
    assert torch.equal(draw(a, positives, 9).ids, first)
    assert torch.equal(draw(b, positives, 5).ids, first)
    # ...while a cap below N - 1 chooses at random.
    capped = [draw(a, positives, 2).ids for _ in range(5)]
    assert any(not torch.equal(capped[0], other) for other in capped[1:])


def test_rank_changes_the_stream(name: str):
    positives = positives_of((64,))
    rank0 = make(name, seed=11)
    rank1 = make(name, seed=11)
    rank1.set_rank(1)
    assert rank1.rank == 1
    for component in rank1.components():
        assert component.rank == 1
    draws0 = draw(rank0, positives, 5).ids
    draws1 = draw(rank1, positives, 5).ids
    if name in DETERMINISTIC:
        assert torch.equal(draws0, draws1)
    else:
        assert not torch.equal(draws0, draws1)
    if not is_composite(name):
        # Rank r uses seed + r (composites derive their components' seeds from their own seed,
        # so seed 12 at rank 0 is another stream than seed 11 at rank 1).
        assert torch.equal(draws1, draw(make(name, seed=12), positives, 5).ids)
    # Back to rank 0 restarts rank 0's stream.
    rank1.set_rank(0)
    assert torch.equal(draw(rank1, positives, 5).ids, draws0)


def test_manual_seed_restarts_the_stream(name: str):
    positives = positives_of((32,))
    sampler = make(name, seed=3)
    first = draw(sampler, positives, 4)
    draw(sampler, positives, 4)
    sampler.manual_seed(3)
    assert_same(draw(sampler, positives, 4), first)


@pytest.mark.parametrize("name", CHECKPOINT_PARAMS)
@pytest.mark.parametrize("through_bytes", [False, True])
def test_checkpoint_round_trip_into_a_fresh_sampler(name: str, through_bytes: bool):
    positives = positives_of((4, 3))
    used = make(name, seed=5)
    draw(used, positives, 6)
    draw(used, positives_of((4, 3), seed=1), 2)
    state = used.state_dict()
    if through_bytes:
        state = saved_and_loaded(state)
    fresh = make(name, seed=999, setup=False)  # never set up, another seed
    fresh.load_state_dict(state)
    assert fresh.vocab_size == V
    # Every saved tensor (tables, queue, index) is restored as it was.
    restored = fresh.state_dict()
    for key, value in used.state_dict().items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(restored[key], value), key
    if isinstance(used, MemoryBankSampler):
        assert isinstance(fresh, MemoryBankSampler)
        assert int(used.filled) == BANK_SIZE
        assert torch.equal(fresh.contents(), used.contents())
    if isinstance(used, IndexHardNegativeSampler):
        assert isinstance(fresh, IndexHardNegativeSampler)
        assert fresh.index.shape == (V, INDEX_POOL)
        assert torch.equal(fresh.index, used.index) and torch.equal(fresh.age, used.age)
    expected = draw(used, positives, 6)
    got = draw(fresh, positives, 6)
    assert_same(got, expected)
    # ...and the streams stay together afterwards.
    assert torch.equal(draw(fresh, positives, 3).ids, draw(used, positives, 3).ids)


@pytest.mark.parametrize("name", CHECKPOINT_PARAMS)
def test_checkpoint_of_an_unused_sampler_starts_from_its_seed(name: str):
    positives = positives_of((16,))
    unused = make(name, seed=21)
    fresh = make(name, seed=0, setup=False)
    fresh.load_state_dict(unused.state_dict())
    expected = draw(make(name, seed=21), positives, 4).ids
    assert torch.equal(draw(fresh, positives, 4).ids, expected)


def test_to_cpu_keeps_working(name: str):
    sampler = make(name, seed=2)
    moved = sampler.to("cpu")
    assert moved is sampler
    for buffer in sampler.buffers():
        assert buffer.device.type == "cpu"
    positives = positives_of((8,))
    out = draw(sampler, positives, 3)
    assert out.ids.device.type == "cpu" and out.mask.device.type == "cpu"
    assert torch.equal(out.ids, draw(make(name, seed=2), positives, 3).ids)


# ---------------------------------------------------------------------------------- exclude
@pytest.mark.parametrize("shape", [(64,), (8, 8)])
def test_exclude_hits_are_masked(name: str, shape: tuple[int, ...]):
    sampler = make(name, seed=6)
    positives = positives_of(shape, seed=6)
    exclude = exclude_of(positives, seed=6)
    out = draw(sampler, positives, 3, exclude=exclude)
    assert out.ids.shape == (*shape, 3)
    check_mask(name, out, positives, exclude)
    only_excluded = reference_hits(out.ids, positives, exclude) & (
        out.ids != positives.unsqueeze(-1)
    )
    if name in REDRAW:
        # Every row has enough non-hits: none is drawn.
        assert out.mask.all()
    elif not needs_scorer(name):
        # The exclude rows did matter: some draws hit them and were masked.
        assert only_excluded.any()
        assert not out.mask[only_excluded].any()


def test_exclude_padding_never_masks(name: str):
    # A row excluding nothing (only -1) behaves as without exclude.
    positives = positives_of((32,), seed=2)
    padded = torch.full((32, 4), -1, dtype=torch.int64)
    with_padding = draw(make(name, seed=4), positives, 3, exclude=padded)
    without = draw(make(name, seed=4), positives, 3)
    assert_same(with_padding, without)


@pytest.mark.parametrize(
    "exclude_shape", [(6,), (5, 2), (6, 2, 1), (1, 2)], ids=["1d", "rows", "3d", "one-row"]
)
def test_bad_exclude_shape_raises(name: str, exclude_shape: tuple[int, ...]):
    positives = positives_of((6,))
    exclude = torch.zeros(exclude_shape, dtype=torch.int64)
    with pytest.raises(ValueError, match="exclude"):
        draw(make(name), positives, 2, exclude=exclude)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bool])
def test_exclude_of_a_non_integer_dtype_raises(name: str, dtype: torch.dtype):
    positives = positives_of((6,))
    exclude = torch.zeros((6, 2), dtype=dtype)
    with pytest.raises(TypeError, match="exclude"):
        draw(make(name), positives, 2, exclude=exclude)


@pytest.mark.parametrize("bad", [-2, -10, V, V + 5])
def test_exclude_id_out_of_range_raises(name: str, bad: int):
    positives = positives_of((3,))
    exclude = torch.tensor([[1, -1], [bad, 2], [-1, -1]])
    with pytest.raises(IndexError, match="exclude"):
        draw(make(name), positives, 2, exclude=exclude)


def test_int32_exclude_is_accepted(name: str):
    positives = positives_of((32,), seed=3)
    exclude = exclude_of(positives, seed=3)
    a = draw(make(name, seed=1), positives, 3, exclude=exclude)
    b = draw(make(name, seed=1), positives, 3, exclude=exclude.to(torch.int32))
    assert_same(a, b)


@pytest.mark.parametrize("width", [None, 0, 3])
def test_an_empty_batch_gives_empty_negatives(name: str, width: int | None):
    positives = torch.zeros(0, dtype=torch.int64)
    exclude = None if width is None else torch.zeros((0, width), dtype=torch.int64)
    out = draw(make(name), positives, 3, exclude=exclude)
    columns = out.ids.shape[-1]
    if caps_columns(name):
        assert 0 <= columns <= 3  # no other positive: in-batch columns are empty
    else:
        assert columns == 3
    assert out.ids.shape == (0, columns) and out.mask.shape == (0, columns)
    assert out.ids.dtype == torch.int64 and out.mask.dtype == torch.bool
    if declared(name).log_q_kind is None:
        assert out.log_q is None
    else:
        assert out.log_q is not None and out.log_q.shape == (0, columns)


@pytest.mark.parametrize("anchor_shape", [(7,), (6, 1), ()])
def test_anchors_of_another_shape_raise(name: str, anchor_shape: tuple[int, ...]):
    positives = positives_of((6,))
    anchors = torch.zeros(anchor_shape, dtype=torch.int64)
    with pytest.raises(ValueError, match="anchors"):
        make(name).sample(positives, 2, anchors=anchors, scorer=scorer)


# ---------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("num_negatives", [0, -1])
def test_num_negatives_below_one_raises(name: str, num_negatives: int):
    with pytest.raises(ValueError, match="num_negatives"):
        draw(make(name), positives_of((3,)), num_negatives)


@pytest.mark.parametrize("num_negatives", [2.0, True, "3"])
def test_num_negatives_not_an_int_raises(name: str, num_negatives: object):
    with pytest.raises(TypeError, match="num_negatives"):
        draw(make(name), positives_of((3,)), num_negatives)  # type: ignore[arg-type]


def test_sampling_before_setup_raises(name: str):
    with pytest.raises(RuntimeError, match="setup"):
        draw(make(name, setup=False), positives_of((3,)), 2)


@pytest.mark.parametrize("bad", [V, V + 10, -1])
def test_out_of_range_positive_raises(name: str, bad: int):
    positives = torch.tensor([0, bad, 1])
    with pytest.raises(IndexError):
        draw(make(name), positives, 2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_float_positives_raise(name: str, dtype: torch.dtype):
    with pytest.raises(TypeError):
        draw(make(name), torch.tensor([0.0, 1.0], dtype=dtype), 2)


@pytest.mark.parametrize(
    "counts",
    [
        torch.tensor([]),
        torch.ones(2, 3),
        torch.tensor(4.0),
        torch.tensor([1.0, -1.0, 2.0]),
        torch.tensor([1.0, float("nan")]),
        torch.tensor([1.0, float("inf")]),
    ],
    ids=["empty", "2d", "0d", "negative", "nan", "inf"],
)
def test_setup_with_bad_counts_raises(name: str, counts: torch.Tensor):
    with pytest.raises(ValueError):
        make(name, setup=False).setup(counts)


def test_setup_accepts_integer_counts_and_lists(name: str):
    a, b = make(name, seed=4, setup=False), make(name, seed=4, setup=False)
    a.setup(COUNTS.long())
    b.setup(COUNTS.tolist())  # type: ignore[arg-type]
    positives = positives_of((10,))
    assert a.vocab_size == b.vocab_size == V
    assert torch.equal(draw(a, positives, 3).ids, draw(b, positives, 3).ids)


@pytest.mark.parametrize("name", sorted(set(FACTORIES) - DETERMINISTIC))
def test_ranks_still_differ_after_loading_one_checkpoint(name: str):
    positives = positives_of((64,))
    used = make(name, seed=5)
    draw(used, positives, 4)
    state = used.state_dict()
    rank0, rank1 = make(name, setup=False), make(name, setup=False)
    rank0.load_state_dict(state)
    rank1.load_state_dict(state)
    rank1.set_rank(1)
    assert not torch.equal(draw(rank0, positives, 4).ids, draw(rank1, positives, 4).ids)


# ---------------------------------------------------------------------------------- observe
def test_observe_feeds_the_memory_bank_and_nothing_else(name: str):
    # A batch seen without drawing: a memory bank enqueues it; every other sampler ignores it
    # (no state changes, no random numbers consumed).
    positives = positives_of((4, 3), seed=8)
    observed, twin = make(name, seed=3), make(name, seed=3)
    before = {key: value.clone() for key, value in observed.state_dict().items()
              if isinstance(value, torch.Tensor)}
    observed.observe(positives)
    if isinstance(observed, MemoryBankSampler):
        assert isinstance(twin, MemoryBankSampler)
        assert observed.contents().tolist() == positives.reshape(-1).tolist()
        twin.enqueue(positives)
    else:
        for key, value in observed.state_dict().items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(value, before[key]), key
    later = positives_of((16,), seed=9)
    assert_same(draw(observed, later, 4), draw(twin, later, 4))


def test_sampler_state_survives_a_save_before_any_draw() -> None:
    used = UnigramSampler(seed=3)
    used.setup(torch.arange(1.0, 11.0))
    used.sample(torch.zeros(5, dtype=torch.long), 2)
    first = UnigramSampler()
    first.load_state_dict(used.state_dict())
    second = UnigramSampler()
    second.load_state_dict(first.state_dict())  # saved again before drawing
    positives = torch.zeros(7, dtype=torch.long)
    assert torch.equal(used.sample(positives, 3).ids, second.sample(positives, 3).ids)


def test_sampler_on_another_device_is_a_clear_error() -> None:
    sampler = UnigramSampler()
    sampler.setup(torch.ones(4))
    with pytest.raises(RuntimeError, match=r"tables are on cpu.*\.to\(device\)"):
        sampler.sample(torch.zeros(3, dtype=torch.long, device="meta"), 2)


# ---------------------------------------------------------------------------------- capabilities
def test_log_q_is_none_exactly_when_log_q_kind_is_none(name: str):
    sampler = make(name)
    positives = positives_of((16,))
    out = draw(sampler, positives, 3)
    assert sampler.log_q_kind in ("per_draw", "inclusion", None)
    assert (out.log_q is None) == (sampler.log_q_kind is None)
    assert (sampler.log_prob(out.ids, positives) is None) == (sampler.log_q_kind is None)


def test_only_samplers_that_need_a_scorer_use_one(name: str):
    positives = positives_of((16,))
    if needs_scorer(name):
        for kwargs in ({}, {"anchors": positives}, {"scorer": scorer}):
            with pytest.raises(ValueError, match="anchors= and scorer="):
                make(name).sample(positives, 3, **kwargs)  # type: ignore[arg-type]
    else:  # anchors and scorer are ignored
        assert_same(make(name, seed=5).sample(positives, 3), draw(make(name, seed=5), positives, 3))


def test_only_samplers_that_take_k_as_a_cap_return_fewer_columns(name: str):
    # One positive: a batch without others. K is then a count for samplers that draw from the
    # items (a memory bank too), and an unreachable cap for the others.
    sampler = make(name)
    out = draw(sampler, torch.tensor([5]), 4)
    if sampler.draws_from_items():
        assert out.ids.shape == (1, 4)
    else:
        assert out.ids.shape[-1] < 4
        assert sampler.batch_based  # the cap is the batch's size


def test_batch_based_says_where_the_candidates_come_from(name: str):
    sampler = make(name, seed=2)
    positives = torch.tensor([3, 5] * 8)
    outs = [draw(sampler, positives, 4) for _ in range(3)]
    drawn = set(torch.cat([out.ids[out.mask] for out in outs]).tolist())
    parts = [leaf.batch_based for leaf in leaves(sampler)]
    assert sampler.batch_based == any(parts)
    if all(parts):  # ids absent from the batches cannot be drawn
        assert drawn <= {3, 5}
    if not any(parts):  # candidates come from the whole vocabulary
        assert drawn - {3, 5}


def test_fixed_distribution_means_one_log_prob_for_every_row_and_batch(name: str):
    sampler = make(name, seed=3)
    positives = positives_of((32,), seed=3)
    exclude = exclude_of(positives, seed=3)
    out = draw(sampler, positives, 3, exclude=exclude)  # unique-redraw keeps 3 of 7 items
    everything = torch.arange(V).expand(32, V)
    log_prob = sampler.log_prob(out.ids, positives, exclude)
    table = sampler.log_prob(everything, positives, exclude)
    others = positives_of((32,), seed=4)
    draw(sampler, others, 3)  # another batch: a batch-based sampler's distribution moves
    later = sampler.log_prob(everything, others)
    if sampler.fixed_distribution:
        assert out.log_q is not None and log_prob is not None and table is not None
        torch.testing.assert_close(out.log_q, log_prob)
        assert torch.equal(table, table[:1].expand_as(table))  # the same for every row...
        assert later is not None and torch.equal(later, table)  # ...and every batch
        torch.testing.assert_close(table[0].double().exp().sum(), torch.tensor(1.0).double())
    else:  # a witness that no one distribution serves
        witnesses = [
            log_prob is None or out.log_q is None,
            out.log_q is not None and log_prob is not None
            and not torch.allclose(out.log_q, log_prob),
            table is not None and not torch.equal(table, table[:1].expand_as(table)),
            table is not None and later is not None and not torch.equal(later[:1], table[:1]),
        ]
        assert any(witnesses)


@pytest.mark.parametrize("name", [n for n in sorted(FACTORIES) if declared(n).fixed_distribution])
def test_fixed_distribution_draws_follow_exp_log_prob(name: str):
    sampler = make(name, seed=13)
    positives = positives_of((4000,), seed=13)
    out = draw(sampler, positives, 10)  # 40 000 draws, hits included
    log_prob = sampler.log_prob(torch.arange(V)[None, :], positives[:1])
    assert log_prob is not None
    probs = log_prob[0].double().exp().numpy()
    observed = np.bincount(out.ids.reshape(-1).numpy(), minlength=V).astype(np.float64)
    support = probs > 0
    assert observed[~support].sum() == 0
    expected = probs[support] / probs[support].sum() * observed.sum()
    assert chisquare(observed[support], expected).pvalue > 1e-3


@pytest.mark.parametrize(
    "name", [n for n in sorted(FACTORIES) if declared(n).log_q_kind == "inclusion"]
)
def test_inclusion_log_q_is_the_chance_of_the_id_among_the_rows_draws(name: str):
    sampler = make(name, seed=8)
    positives = positives_of((64,), seed=8)
    out = draw(sampler, positives, 4)
    assert out.log_q is not None
    per_draw = sampler.log_prob(out.ids, positives)
    assert per_draw is not None
    for row_ids in out.ids.tolist():
        assert len(set(row_ids)) == 4  # without replacement
    p, pi = per_draw.double().exp(), out.log_q.double().exp()
    # pi = 1 - (1 - p)^T: at least p, and one number of tries T >= K for the whole row.
    assert (pi >= p - 1e-6).all()
    tries = torch.log1p(-pi) / torch.log1p(-p)
    assert (tries >= 4 - 1e-3).all()
    torch.testing.assert_close(tries, tries[:, :1].expand_as(tries), rtol=1e-3, atol=1e-3)
