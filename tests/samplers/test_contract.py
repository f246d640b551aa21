"""The contract every negative sampler in ``nslightning.samplers`` must honour."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
import torch

from nslightning.samplers import NegativeSampler, UniformSampler, UnigramSampler

COUNTS = torch.tensor([5.0, 0.0, 3.0, 10.0, 1.0, 7.0, 2.0, 4.0])
V = COUNTS.numel()

Factory = Callable[[int], NegativeSampler]

FACTORIES: dict[str, Factory] = {
    "uniform": lambda seed: UniformSampler(seed=seed),
    "unigram-0": lambda seed: UnigramSampler(power=0.0, seed=seed),
    "unigram-0.5": lambda seed: UnigramSampler(power=0.5, seed=seed),
    "unigram-0.75": lambda seed: UnigramSampler(power=0.75, seed=seed),
    "unigram-1": lambda seed: UnigramSampler(power=1.0, seed=seed),
}

CHECKPOINT_PARAMS = [
    pytest.param(name)
    for name in FACTORIES
]


@pytest.fixture(params=sorted(FACTORIES))
def name(request: pytest.FixtureRequest) -> str:
    return request.param


def make(name: str, seed: int = 0, setup: bool = True) -> NegativeSampler:
    sampler = FACTORIES[name](seed)
    if setup:
        sampler.setup(COUNTS)
    return sampler


def positives_of(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    return torch.randint(0, V, shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("shape", [(6,), (4, 3), (1,)])
@pytest.mark.parametrize("num_negatives", [1, 5])
def test_shapes_dtypes_device_and_mask(name: str, shape: tuple[int, ...], num_negatives: int):
    sampler = make(name)
    positives = positives_of(shape)
    out = sampler.sample(positives, num_negatives)
    expected = (*shape, num_negatives)
    assert out.ids.shape == expected
    assert out.mask.shape == expected
    assert out.log_q is not None and out.log_q.shape == expected
    assert out.ids.dtype == torch.int64
    assert out.log_q.dtype.is_floating_point
    assert out.mask.dtype == torch.bool
    for tensor in (out.ids, out.log_q, out.mask):
        assert tensor.device == positives.device
    assert torch.equal(out.mask, out.ids != positives.unsqueeze(-1))
    assert int(out.ids.min()) >= 0 and int(out.ids.max()) < V
    assert torch.isfinite(out.log_q).all()
    assert (out.log_q <= 0).all()


def test_mask_flags_accidental_hits(name: str):
    # Many draws against one positive: some hits are certain, and they are exactly the False.
    sampler = make(name)
    positives = torch.full((500,), 3, dtype=torch.int64)
    out = sampler.sample(positives, 4)
    assert (~out.mask).any() and out.mask.any()
    assert torch.equal(~out.mask, out.ids == 3)


def test_int32_positives_are_accepted(name: str):
    sampler = make(name)
    positives = positives_of((5,)).to(torch.int32)
    out = sampler.sample(positives, 3)
    assert out.ids.dtype == torch.int64
    assert torch.equal(out.mask, out.ids != positives.long().unsqueeze(-1))


def test_same_seed_same_draws_different_seed_different_draws(name: str):
    positives = positives_of((64,))
    first, second, other = make(name, seed=7), make(name, seed=7), make(name, seed=8)
    for _ in range(3):  # consecutive draws stay in lock-step
        a, b = first.sample(positives, 5), second.sample(positives, 5)
        assert torch.equal(a.ids, b.ids)
        assert torch.equal(a.log_q, b.log_q)
        assert torch.equal(a.mask, b.mask)
    fresh_a = make(name, seed=7).sample(positives, 5).ids
    assert not torch.equal(fresh_a, other.sample(positives, 5).ids)


def test_consecutive_draws_differ(name: str):
    sampler = make(name, seed=1)
    positives = positives_of((64,))
    assert not torch.equal(sampler.sample(positives, 5).ids, sampler.sample(positives, 5).ids)


def test_rank_changes_the_stream(name: str):
    positives = positives_of((64,))
    rank0 = make(name, seed=11)
    rank1 = make(name, seed=11)
    rank1.set_rank(1)
    draws0 = rank0.sample(positives, 5).ids
    draws1 = rank1.sample(positives, 5).ids
    assert not torch.equal(draws0, draws1)
    # Rank r uses seed + r.
    assert torch.equal(draws1, make(name, seed=12).sample(positives, 5).ids)
    # Back to rank 0 restarts rank 0's stream.
    rank1.set_rank(0)
    assert torch.equal(rank1.sample(positives, 5).ids, draws0)


def test_manual_seed_restarts_the_stream(name: str):
    positives = positives_of((32,))
    sampler = make(name, seed=3)
    first = sampler.sample(positives, 4).ids
    sampler.sample(positives, 4)
    sampler.manual_seed(3)
    assert torch.equal(sampler.sample(positives, 4).ids, first)


@pytest.mark.parametrize("name", CHECKPOINT_PARAMS)
@pytest.mark.parametrize("through_bytes", [False, True])
def test_checkpoint_round_trip_into_a_fresh_sampler(name: str, through_bytes: bool):
    positives = positives_of((4, 3))
    used = make(name, seed=5)
    used.sample(positives, 6)
    used.sample(positives, 2)
    state = used.state_dict()
    if through_bytes:
        buffer = io.BytesIO()
        torch.save(state, buffer)
        buffer.seek(0)
        state = torch.load(buffer, weights_only=False)
    fresh = make(name, seed=999, setup=False)  # never set up, another seed
    fresh.load_state_dict(state)
    assert fresh.num_items == V
    expected = used.sample(positives, 6)
    got = fresh.sample(positives, 6)
    assert torch.equal(got.ids, expected.ids)
    assert torch.equal(got.log_q, expected.log_q)
    assert torch.equal(got.mask, expected.mask)
    # ...and the streams stay together afterwards.
    assert torch.equal(fresh.sample(positives, 3).ids, used.sample(positives, 3).ids)


@pytest.mark.parametrize("name", CHECKPOINT_PARAMS)
def test_checkpoint_of_an_unused_sampler_starts_from_its_seed(name: str):
    positives = positives_of((16,))
    unused = make(name, seed=21)
    fresh = make(name, seed=0, setup=False)
    fresh.load_state_dict(unused.state_dict())
    assert torch.equal(fresh.sample(positives, 4).ids, make(name, seed=21).sample(positives, 4).ids)


def test_to_cpu_keeps_working(name: str):
    sampler = make(name, seed=2)
    moved = sampler.to("cpu")
    assert moved is sampler
    for buffer in sampler.buffers():
        assert buffer.device.type == "cpu"
    positives = positives_of((8,))
    out = sampler.sample(positives, 3)
    assert out.ids.device.type == "cpu"
    assert torch.equal(out.ids, make(name, seed=2).sample(positives, 3).ids)


# ---------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("num_negatives", [0, -1])
def test_num_negatives_below_one_raises(name: str, num_negatives: int):
    with pytest.raises(ValueError, match="num_negatives"):
        make(name).sample(positives_of((3,)), num_negatives)


@pytest.mark.parametrize("num_negatives", [2.0, True, "3"])
def test_num_negatives_not_an_int_raises(name: str, num_negatives: object):
    with pytest.raises(TypeError, match="num_negatives"):
        make(name).sample(positives_of((3,)), num_negatives)  # type: ignore[arg-type]


def test_sampling_before_setup_raises(name: str):
    with pytest.raises(RuntimeError, match="setup"):
        make(name, setup=False).sample(positives_of((3,)), 2)


@pytest.mark.parametrize("bad", [V, V + 10, -1])
def test_out_of_range_positive_raises(name: str, bad: int):
    positives = torch.tensor([0, bad, 1])
    with pytest.raises(IndexError):
        make(name).sample(positives, 2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_float_positives_raise(name: str, dtype: torch.dtype):
    with pytest.raises(TypeError):
        make(name).sample(torch.tensor([0.0, 1.0], dtype=dtype), 2)


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
    assert torch.equal(a.sample(positives, 3).ids, b.sample(positives, 3).ids)


@pytest.mark.parametrize("name", ["unigram-0.75"])
def test_ranks_still_differ_after_loading_one_checkpoint(name: str):
    positives = positives_of((64,))
    used = make(name, seed=5)
    used.sample(positives, 4)
    state = used.state_dict()
    rank0, rank1 = make(name, setup=False), make(name, setup=False)
    rank0.load_state_dict(state)
    rank1.load_state_dict(state)
    rank1.set_rank(1)
    assert not torch.equal(rank0.sample(positives, 4).ids, rank1.sample(positives, 4).ids)
