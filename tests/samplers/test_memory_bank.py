"""MemoryBankSampler: a FIFO queue of recent positives, drawn uniformly, kept in checkpoints."""

from __future__ import annotations

import math
import random
from collections import Counter, deque

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from nslightning.samplers import MemoryBankSampler
from tests.samplers.checkpoints import saved_and_loaded

V = 50
P_MIN = 1e-3


def make(size: int, seed: int = 0, never_drawn: list[int] | None = None) -> MemoryBankSampler:
    sampler = MemoryBankSampler(size=size, seed=seed, never_drawn=never_drawn)
    sampler.setup(torch.ones(V))
    return sampler


def check_against(sampler: MemoryBankSampler, reference: deque[int]) -> None:
    assert sampler.contents().tolist() == list(reference)
    assert int(sampler.filled) == len(reference)


# ---------------------------------------------------------------------------- the queue
@pytest.mark.parametrize("size", [1, 2, 5, 8])
def test_contents_are_the_last_size_ids_in_order(size: int):
    rng = random.Random(size)
    for _ in range(30):
        sampler = make(size)
        reference: deque[int] = deque(maxlen=size)
        for _ in range(rng.randint(1, 8)):
            # Lengths around the capacity: shorter, equal, longer, and empty batches.
            length = rng.choice([0, 1, size - 1, size, size + 1, 2 * size + 3, rng.randint(0, 20)])
            batch = [rng.randrange(V) for _ in range(max(length, 0))]
            sampler.enqueue(torch.tensor(batch, dtype=torch.int64))
            reference.extend(batch)
            check_against(sampler, reference)


def test_wrap_around_step_by_step():
    sampler = make(4)
    sampler.enqueue(torch.tensor([1, 2, 3]))
    assert sampler.contents().tolist() == [1, 2, 3]
    sampler.enqueue(torch.tensor([4, 5]))  # fills and wraps by one
    assert sampler.contents().tolist() == [2, 3, 4, 5]
    sampler.enqueue(torch.tensor([6]))
    assert sampler.contents().tolist() == [3, 4, 5, 6]
    sampler.enqueue(torch.tensor([7, 8, 9, 10, 11, 12]))  # longer than the queue, from mid-way
    assert sampler.contents().tolist() == [9, 10, 11, 12]
    sampler.enqueue(torch.tensor([13, 14, 15, 16]))  # exactly the size
    assert sampler.contents().tolist() == [13, 14, 15, 16]
    sampler.enqueue(torch.tensor([], dtype=torch.int64))
    assert sampler.contents().tolist() == [13, 14, 15, 16]


def test_multi_dim_ids_are_enqueued_in_row_major_order():
    sampler = make(10)
    sampler.enqueue(torch.tensor([[1, 2, 3], [4, 5, 6]]))
    assert sampler.contents().tolist() == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize("size", [1, 3, 6])
def test_never_drawn_ids_never_enter(size: int):
    never = {0, 3}
    rng = random.Random(10 + size)
    sampler = make(size, never_drawn=sorted(never))
    reference: deque[int] = deque(maxlen=size)
    for _ in range(40):
        batch = [rng.choice([0, 3, rng.randrange(V)]) for _ in range(rng.randint(0, 2 * size + 2))]
        sampler.enqueue(torch.tensor(batch, dtype=torch.int64))
        reference.extend(v for v in batch if v not in never)
        check_against(sampler, reference)
        assert not set(sampler.contents().tolist()) & never


def test_sample_uses_the_same_queue_as_enqueue():
    rng = random.Random(3)
    sampler = make(7, seed=1)
    reference: deque[int] = deque(maxlen=7)
    for _ in range(20):
        rows = rng.randint(1, 5)
        positives = torch.tensor([[rng.randrange(V) for _ in range(2)] for _ in range(rows)])
        sampler.sample(positives, 3)
        reference.extend(positives.reshape(-1).tolist())
        check_against(sampler, reference)


def test_size_below_one_raises():
    for size in (0, -3):
        with pytest.raises(ValueError, match="size must be >= 1"):
            MemoryBankSampler(size=size)


# ---------------------------------------------------------------------------- drawing
def test_first_call_draws_only_from_its_own_positives():
    sampler = make(100, seed=2)
    positives = torch.tensor([4, 7, 9, 7])
    out = sampler.sample(positives, 50)
    assert set(out.ids.unique().tolist()) == {4, 7, 9}
    assert torch.equal(out.mask, out.ids != positives[:, None])


def test_first_call_longer_than_the_queue_draws_from_its_tail():
    sampler = make(4, seed=2)
    positives = torch.arange(10, 20)
    out = sampler.sample(positives, 40)
    assert set(out.ids.unique().tolist()) == {16, 17, 18, 19}


def test_draws_come_only_from_the_queue_with_log_q_its_share():
    sampler = make(12, seed=5)
    gen = torch.Generator().manual_seed(0)
    for step in range(15):
        positives = torch.randint(0, 8 + step, (5,), generator=gen)
        out = sampler.sample(positives, 6)
        queue = sampler.contents().tolist()
        shares = Counter(queue)
        assert set(out.ids.unique().tolist()) <= set(queue)
        assert out.log_q is not None
        expected = torch.tensor([[math.log(shares[v] / len(queue)) for v in row] for row in
                                 out.ids.tolist()])
        torch.testing.assert_close(out.log_q, expected.float())
        torch.testing.assert_close(sampler.log_prob(out.ids, positives), out.log_q)
        assert torch.equal(out.mask, out.ids != positives[:, None])


def test_log_prob_is_minus_inf_for_ids_not_queued():
    sampler = make(5)
    sampler.enqueue(torch.tensor([1, 1, 2]))
    log_prob = sampler.log_prob(torch.tensor([[1, 2, 3, 0]]), torch.tensor([1]))
    expected = torch.tensor([[math.log(2 / 3), math.log(1 / 3), -math.inf, -math.inf]])
    torch.testing.assert_close(log_prob, expected)


def test_draws_are_uniform_over_the_slots():
    sampler = make(6, seed=3)
    positives = torch.tensor([10, 11, 11, 12, 13, 13])
    out = sampler.sample(positives, 3000)
    assert sampler.contents().tolist() == positives.tolist()
    observed = np.array([(out.ids == v).sum().item() for v in (10, 11, 12, 13)], dtype=np.float64)
    expected = np.array([1, 2, 1, 2]) / 6 * out.ids.numel()
    assert chisquare(observed, expected).pvalue > P_MIN


def test_an_empty_queue_gives_masked_slots():
    sampler = make(4, never_drawn=[0])
    out = sampler.sample(torch.tensor([0, 0]), 3)
    assert out.ids.shape == (2, 3)
    assert not out.mask.any()
    assert int(out.ids.min()) >= 0 and int(out.ids.max()) < V
    assert int(sampler.filled) == 0


def test_slots_are_drawn_from_float64_uniforms():
    # rank r draws with seed + r: the same uniforms, in float64, scaled by the fill, are the
    # slots (float32 uniforms have too few values for every slot of a large queue).
    seed, size, k = 11, 1000, 7
    sampler = make(size, seed=seed)
    positives = torch.randint(0, V, (size,), generator=torch.Generator().manual_seed(0))
    out = sampler.sample(positives, k)
    bank = sampler.contents()
    assert bank.tolist() == positives.tolist()

    def reference(dtype: torch.dtype) -> torch.Tensor:
        u = torch.rand((size, k), generator=torch.Generator().manual_seed(seed), dtype=dtype)
        return bank[(u.double() * size).long()]

    assert torch.equal(out.ids, reference(torch.float64))
    assert not torch.equal(out.ids, reference(torch.float32))  # the test tells them apart


def test_log_q_needs_no_bincount(monkeypatch: pytest.MonkeyPatch):
    # The share of each slot's id is counted with sort and search only: bincount would read its
    # output size back from the device.
    def no_bincount(*args: object, **kwargs: object) -> torch.Tensor:
        raise AssertionError("torch.bincount called")

    sampler = make(8, seed=2)
    sampler.enqueue(torch.tensor([5, 1, 5, 7, 5, 1, 9, 3, 1, 1]))  # wrapped: 5 7 5 1 9 3 1 1
    monkeypatch.setattr(torch, "bincount", no_bincount)
    out = sampler.sample(torch.tensor([2, 1]), 50)
    queue = Counter(sampler.contents().tolist())
    assert sum(queue.values()) == 8
    expected = torch.tensor([[math.log(queue[v] / 8) for v in row] for row in out.ids.tolist()])
    assert out.log_q is not None
    torch.testing.assert_close(out.log_q, expected.float())
    torch.testing.assert_close(sampler.log_prob(out.ids, torch.tensor([2, 1])), out.log_q)


def test_observe_enqueues_without_drawing():
    observed, enqueued = make(5, seed=3), make(5, seed=3)
    batch = torch.tensor([[4, 8], [8, 1]])
    observed.observe(batch)
    enqueued.enqueue(batch)
    assert observed.contents().tolist() == [4, 8, 8, 1]
    assert torch.equal(observed.bank, enqueued.bank)
    assert int(observed.cursor) == int(enqueued.cursor)
    assert int(observed.filled) == int(enqueued.filled) == 4
    positives = torch.tensor([4, 1, 2])
    a, b = observed.sample(positives, 6), enqueued.sample(positives, 6)
    assert torch.equal(a.ids, b.ids)  # observing consumed no random numbers


def test_observe_skips_never_drawn_ids():
    sampler = make(5, never_drawn=[0])
    sampler.observe(torch.tensor([0, 3, 0, 2]))
    assert sampler.contents().tolist() == [3, 2]


# ---------------------------------------------------------------------------- state
def fill(sampler: MemoryBankSampler, calls: int, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    for _ in range(calls):
        sampler.sample(torch.randint(0, V, (4,), generator=gen), 3)


@pytest.mark.parametrize("fresh_size", [9, 2, 30])
@pytest.mark.parametrize("through_bytes", [False, True])
def test_state_survives_a_checkpoint_and_continues_identically(
    fresh_size: int, through_bytes: bool
):
    original = make(9, seed=4)
    fill(original, 5, seed=0)  # 20 ids through a queue of 9: wrapped, cursor mid-way
    assert 0 < int(original.cursor) < 9
    state = original.state_dict()
    if through_bytes:
        state = saved_and_loaded(state)
    fresh = MemoryBankSampler(size=fresh_size, seed=123)
    fresh.load_state_dict(state)
    assert fresh.size == 9
    assert torch.equal(fresh.bank, original.bank)
    assert int(fresh.cursor) == int(original.cursor)
    assert int(fresh.filled) == int(original.filled)
    assert fresh.contents().tolist() == original.contents().tolist()
    gen = torch.Generator().manual_seed(1)
    for _ in range(6):
        positives = torch.randint(0, V, (3,), generator=gen)
        a, b = original.sample(positives, 4), fresh.sample(positives, 4)
        assert torch.equal(a.ids, b.ids)
        assert torch.equal(a.mask, b.mask)
        assert a.log_q is not None and b.log_q is not None
        assert torch.equal(a.log_q, b.log_q)
        assert fresh.contents().tolist() == original.contents().tolist()


def test_a_partly_filled_queue_survives_a_checkpoint():
    original = make(10, seed=6)
    original.enqueue(torch.tensor([3, 1, 4]))
    fresh = MemoryBankSampler(size=10)
    fresh.load_state_dict(original.state_dict())
    assert fresh.contents().tolist() == [3, 1, 4]
    fresh.enqueue(torch.tensor([1, 5]))
    assert fresh.contents().tolist() == [3, 1, 4, 1, 5]


def test_setup_empties_the_queue():
    sampler = make(5, seed=7)
    fill(sampler, 4, seed=2)
    assert int(sampler.filled) == 5
    sampler.setup(torch.ones(V))
    assert sampler.contents().tolist() == []
    assert int(sampler.filled) == 0 and int(sampler.cursor) == 0
    out = sampler.sample(torch.tensor([8, 9]), 20)
    assert set(out.ids.unique().tolist()) == {8, 9}
    assert sampler.contents().tolist() == [8, 9]
