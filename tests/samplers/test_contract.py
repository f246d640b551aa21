"""The contract every negative sampler in ``nslightning.samplers`` must honour.

Every sampler (and every option of the table samplers) runs through the same tests. Where a
strategy legitimately differs from the plain table samplers, the expectation is adjusted in one
place, with the reason next to it:

* batch-based samplers (in-batch, memory bank) draw from the positives themselves;
* in-batch returns ``min(K, N - 1)`` columns, and is deterministic when ``K >= N - 1``;
* hard negatives are chosen by score: ``log_q`` is ``None``, duplicates and slots the pool cannot
  fill are masked too, and top-k over a fixed index with a fixed scorer involves no randomness;
* composites (mixture, hard pool mode) derive their components' seeds from their own seed, so
  "seed 12 at rank 0 == seed 11 at rank 1" only holds for basic samplers;
* redraw samplers (and hard samplers with enough valid candidates) never return a hit at all.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from nslightning.samplers import (
    HardNegativeSampler,
    InBatchSampler,
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
    "hard-index-topk": lambda seed: HardNegativeSampler(
        pool_size=INDEX_POOL, selection="topk", chunk_size=3, seed=seed
    ),
    "hard-index-softmax": lambda seed: HardNegativeSampler(
        pool_size=INDEX_POOL, selection="softmax", temperature=0.5, chunk_size=3, seed=seed
    ),
}

REDRAW = {name for name in FACTORIES if name.endswith("redraw")}
BATCH_BASED = {"in-batch", "memory-bank"}  # candidates are the positives (batch or queue)
HARD = {"hard-pool", "hard-index-topk", "hard-index-softmax"}
HARD_INDEX = {"hard-index-topk", "hard-index-softmax"}
# Top-k over a fixed index, re-scored by a fixed scorer: nothing is random.
DETERMINISTIC = {"hard-index-topk"}
COMPOSITE = {"mixed-in-batch-unigram", "mixed-uniform-log-uniform", "hard-pool"}
# Samplers that return fewer than K columns when the batch has fewer than K other positives.
BATCH_COLUMNS = {"in-batch", "mixed-in-batch-unigram"}

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
    if name == "in-batch":
        # Only the N - 1 other positions of the batch are candidates.
        return min(num_negatives, rows - 1), min(num_negatives, rows - 1)
    if name in BATCH_COLUMNS:
        # The in-batch component's random share is capped at N - 1 columns.
        return min(num_negatives, rows - 1), num_negatives
    return num_negatives, num_negatives


def check_mask(
    name: str, out: Negatives, positives: torch.Tensor, exclude: torch.Tensor | None = None
) -> None:
    """``mask`` is False exactly on accidental hits (hard samplers: at least on them)."""
    hits = reference_hits(out.ids, positives, exclude)
    assert not (out.mask & hits).any()
    if name in HARD:
        # Hard samplers also mask duplicates of the pool and slots it could not fill; the valid
        # negatives of a row are distinct.
        flat_ids = out.ids.reshape(-1, out.ids.shape[-1])
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
    kinds = {type(FACTORIES[name](0)) for name in FACTORIES}
    assert kinds == {
        UniformSampler, UnigramSampler, LogUniformSampler, InBatchSampler, MemoryBankSampler,
        MixedSampler, HardNegativeSampler,
    }
    assert len(REDRAW) == 6 and set(FACTORIES) >= HARD and set(FACTORIES) >= BATCH_COLUMNS


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
    if name in HARD:
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
    if name in BATCH_BASED:
        # Every candidate (the batch, or the queue it filled) is the positive: all are hits.
        assert hits.all() and not out.mask.any()
    elif name in REDRAW or name in HARD_INDEX:
        # Hits are redrawn / never selected while the row has enough other candidates.
        assert not hits.any() and out.mask.all()
    else:
        assert (~out.mask).any() and out.mask.any()
        if name not in HARD:
            assert torch.equal(~out.mask, hits)
    check_mask(name, out, positives)


def test_int32_positives_are_accepted(name: str):
    sampler = make(name)
    positives = positives_of((5,)).to(torch.int32)
    out = draw(sampler, positives, 3)
    assert out.ids.dtype == torch.int64
    check_mask(name, out, positives)
    if name not in HARD:
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
    if name not in COMPOSITE:
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
    assert fresh.num_items == V
    # Every saved tensor (tables, queue, index) is restored as it was.
    restored = fresh.state_dict()
    for key, value in used.state_dict().items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(restored[key], value), key
    if isinstance(used, MemoryBankSampler):
        assert isinstance(fresh, MemoryBankSampler)
        assert int(used.filled) == BANK_SIZE
        assert torch.equal(fresh.contents(), used.contents())
    if name in HARD_INDEX:
        assert isinstance(fresh, HardNegativeSampler)
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
    if name in REDRAW or name in HARD_INDEX:
        # Every row has enough non-hits: none is drawn (redraw) or selected (index mode).
        assert out.mask.all()
    elif name not in HARD:
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
    if name == "in-batch":
        assert columns == 0  # no other positive
    elif name in BATCH_COLUMNS:
        assert 0 <= columns <= 3  # the in-batch share is empty
    else:
        assert columns == 3
    assert out.ids.shape == (0, columns) and out.mask.shape == (0, columns)
    assert out.ids.dtype == torch.int64 and out.mask.dtype == torch.bool
    if name in HARD:
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
    assert a.num_items == b.num_items == V
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
