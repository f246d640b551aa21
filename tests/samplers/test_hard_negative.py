"""HardNegativeSampler (a base's pool) and IndexHardNegativeSampler (an index over the
vocabulary): the best-scoring valid candidates of the pool."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from nslightning.samplers import (
    HardNegativeSampler,
    InBatchSampler,
    IndexHardNegativeSampler,
    MemoryBankSampler,
    UniformSampler,
    UnigramSampler,
)
from nslightning.samplers import index_hard_negative as index_module
from nslightning.samplers.base import derived_seed
from tests.samplers.checkpoints import saved_and_loaded

Scorer = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def embedding_scorer(num_items: int, dim: int = 8, seed: int = 0) -> Scorer:
    """A fixed model: the dot product of random embeddings (no ties among distinct items)."""
    emb = torch.randn(num_items, dim, generator=torch.Generator().manual_seed(seed))

    def scorer(anchors: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        return (emb[anchors].unsqueeze(1) * emb[candidates]).sum(-1)

    return scorer


class TableScorer:
    """``scores[anchor, item]`` from a table the test can change between calls."""

    def __init__(self, table: torch.Tensor) -> None:
        self.table = table
        self.calls = 0

    def __call__(self, anchors: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.table[anchors.unsqueeze(1).expand_as(candidates), candidates]


class MiningScorer(TableScorer):
    """A :class:`TableScorer` that also scores shared items for many anchors at once."""

    def __init__(self, table: torch.Tensor, wrong_shape: bool = False) -> None:
        super().__init__(table)
        self.wrong_shape = wrong_shape
        self.mined: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.call_shapes: list[tuple[int, ...]] = []

    def __call__(self, anchors: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        self.call_shapes.append(tuple(candidates.shape))
        return super().__call__(anchors, candidates)

    def mine(self, anchors: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        self.mined.append((anchors.clone(), items.clone()))
        scores = self.table[anchors][:, items]
        return scores.t() if self.wrong_shape else scores


def random_table(anchors: int, items: int, seed: int) -> torch.Tensor:
    return torch.randn(anchors, items, generator=torch.Generator().manual_seed(seed))


def by_id(anchors: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """Lower ids score higher, by steps of 1 (well separated, identical for every anchor)."""
    return -candidates.float() + 0 * anchors[:, None]


def brute_force_best(
    scores: torch.Tensor, usable: torch.Tensor, ids: torch.Tensor, k: int, skip: int = 0
) -> list[int]:
    """The ids of the usable candidates ranked ``skip .. skip + k`` by score (one row)."""
    ranked = sorted(
        (float(s), int(i)) for s, i, u in zip(scores, ids, usable, strict=True) if bool(u)
    )
    ranked.reverse()
    return [i for _, i in ranked[skip : skip + k]]


def first_occurrence(ids: torch.Tensor) -> torch.Tensor:
    """``(R, M)`` bool, True at the first occurrence of each id in its row."""
    out = torch.zeros_like(ids, dtype=torch.bool)
    for r, row in enumerate(ids.tolist()):
        seen: set[int] = set()
        for c, v in enumerate(row):
            out[r, c] = v not in seen
            seen.add(v)
    return out


# ---------------------------------------------------------------------------- the claim
def test_hard_negatives_score_higher_than_their_base():
    v, k = 200, 5
    scorer = embedding_scorer(v)
    gen = torch.Generator().manual_seed(0)
    positives = torch.randint(0, v, (128,), generator=gen)
    anchors = torch.randint(0, v, (128,), generator=gen)
    uniform = UniformSampler(seed=1)
    hard = HardNegativeSampler(UniformSampler(), pool_size=64, seed=1)
    for sampler in (uniform, hard):
        sampler.setup(torch.ones(v))
    base_out = uniform.sample(positives, k)
    hard_out = hard.sample(positives, k, anchors=anchors, scorer=scorer)
    base_scores = scorer(anchors, base_out.ids)[base_out.mask]
    hard_scores = scorer(anchors, hard_out.ids)[hard_out.mask]
    assert hard_out.mask.float().mean() > 0.99
    assert hard_out.log_q is None
    # Random 8-d embeddings: scores have a spread of about 2.8; the top 5 of 64 sit far above.
    assert hard_scores.mean() > base_scores.mean() + 2.0


# ---------------------------------------------------------------------------- pool mode
@pytest.mark.parametrize("skip_top", [0, 3])
def test_pool_topk_is_the_best_valid_candidates_of_the_pool(skip_top: int):
    v, k, pool_size, seed = 40, 4, 16, 11
    scorer = embedding_scorer(v, seed=2)
    hard = HardNegativeSampler(
        UnigramSampler(power=0.5), pool_size=pool_size, skip_top=skip_top, seed=seed
    )
    counts = torch.arange(1.0, v + 1.0)
    hard.setup(counts)
    # The pool is the base's draw: a twin of the base, seeded as the mixture seeds it.
    twin = UnigramSampler(power=0.5, seed=derived_seed(seed, 0))
    twin.setup(counts)
    gen = torch.Generator().manual_seed(3)
    for _ in range(3):
        positives = torch.randint(0, v, (24,), generator=gen)
        anchors = torch.randint(0, v, (24,), generator=gen)
        exclude = torch.randint(-1, v, (24, 3), generator=gen)
        out = hard.sample(positives, k, anchors=anchors, scorer=scorer, exclude=exclude)
        pool = twin.sample(positives, pool_size, exclude=exclude)
        usable = pool.mask & first_occurrence(pool.ids)
        scores = scorer(anchors, pool.ids)
        for row in range(24):
            expected = brute_force_best(scores[row], usable[row], pool.ids[row], k, skip_top)
            got = out.ids[row][out.mask[row]].tolist()
            assert got == expected, row
            if len(expected) == k:
                assert out.mask[row].all()


def test_exclude_and_positive_are_never_valid_selections():
    # The positive (0) and the excluded ids (1, 2) score best; enough others exist.
    hard = HardNegativeSampler(UniformSampler(), pool_size=32, seed=4)
    hard.setup(torch.ones(20))
    positives = torch.zeros(50, dtype=torch.int64)
    anchors = torch.arange(50) % 20
    exclude = torch.tensor([1, 2, -1]).expand(50, 3)
    for selection_sampler in (hard, softmax_twin(hard)):
        out = selection_sampler.sample(positives, 4, anchors=anchors, scorer=by_id, exclude=exclude)
        assert out.mask.all()
        assert not torch.isin(out.ids, torch.tensor([0, 1, 2])).any()


def softmax_twin(hard: HardNegativeSampler) -> HardNegativeSampler:
    twin = HardNegativeSampler(
        UniformSampler(), pool_size=hard.pool_size, selection="softmax", temperature=1.0, seed=9
    )
    twin.setup(torch.ones(hard.vocab_size))
    return twin


@pytest.mark.parametrize("selection", ["topk", "softmax"])
def test_no_duplicate_valid_ids_in_a_row(selection: str):
    v = 30
    hard = HardNegativeSampler(UniformSampler(), pool_size=64, selection=selection, seed=2)
    hard.setup(torch.ones(v))
    scorer = embedding_scorer(v, seed=5)
    gen = torch.Generator().manual_seed(1)
    positives = torch.randint(0, v, (40,), generator=gen)
    out = hard.sample(positives, 10, anchors=positives.flip(0), scorer=scorer)
    assert out.mask.all()  # 64 draws over 30 items leave far more than 10 distinct ones
    for row in range(40):
        valid = out.ids[row][out.mask[row]].tolist()
        assert len(valid) == len(set(valid))
        assert positives[row].item() not in valid


def test_multi_dim_positives_keep_their_shape():
    hard = HardNegativeSampler(UniformSampler(), pool_size=8, seed=0)
    hard.setup(torch.ones(12))
    positives = torch.tensor([[0, 1, 2], [3, 4, 5]])
    out = hard.sample(positives, 3, anchors=positives, scorer=embedding_scorer(12))
    assert out.ids.shape == (2, 3, 3) and out.mask.shape == (2, 3, 3)


# ---------------------------------------------------------------------------- selection
def test_skip_top_skips_exactly_the_best_few():
    hard = IndexHardNegativeSampler(pool_size=10, skip_top=2, refresh_every=1)
    hard.setup(torch.ones(20))
    positives = torch.full((3,), 19)
    out = hard.sample(positives, 4, anchors=torch.tensor([0, 5, 7]), scorer=by_id)
    # by_id ranks 0, 1, 2, ...: skip 0 and 1, keep 2..5.
    assert out.ids.tolist() == [[2, 3, 4, 5]] * 3
    assert out.mask.all()


def test_softmax_at_low_temperature_equals_topk():
    v = 25
    table = torch.randperm(v * 6, generator=torch.Generator().manual_seed(0)).view(6, v).float()
    scorer = TableScorer(table)  # distinct integer scores: gaps >= 1
    topk = IndexHardNegativeSampler(pool_size=12, num_anchors=6, refresh_every=1)
    cold = IndexHardNegativeSampler(
        pool_size=12, num_anchors=6, refresh_every=1, selection="softmax",
        temperature=0.01, seed=3,
    )
    for sampler in (topk, cold):
        sampler.setup(torch.ones(v))
    gen = torch.Generator().manual_seed(2)
    for _ in range(5):
        positives = torch.randint(0, v, (6,), generator=gen)
        anchors = torch.arange(6)
        a = topk.sample(positives, 5, anchors=anchors, scorer=scorer)
        b = cold.sample(positives, 5, anchors=anchors, scorer=scorer)
        assert torch.equal(a.ids, b.ids)
        assert torch.equal(a.mask, b.mask)


def test_softmax_at_high_temperature_spreads_over_the_pool():
    v, k, pool_size, calls = 30, 2, 10, 400
    hot = IndexHardNegativeSampler(
        pool_size=pool_size, selection="softmax", temperature=1e4, seed=1
    )
    hot.setup(torch.ones(v))
    positives, anchors = torch.tensor([29]), torch.tensor([0])
    chosen = torch.stack(
        [hot.sample(positives, k, anchors=anchors, scorer=by_id).ids[0] for _ in range(calls)]
    )
    # The pool is ids 0..9; near-uniform selection takes each about K / 10 of the time.
    counts = torch.bincount(chosen.reshape(-1), minlength=v).float()
    assert set(chosen.unique().tolist()) == set(range(pool_size))
    assert counts[0] / calls < 0.4  # topk would take id 0 every time
    torch.testing.assert_close(counts[:pool_size] / calls, torch.full((10,), 0.2), atol=0.08,
                               rtol=0)


def test_softmax_skip_top_never_selects_the_skipped():
    hard = IndexHardNegativeSampler(
        pool_size=10, selection="softmax", temperature=100.0, skip_top=3, seed=4
    )
    hard.setup(torch.ones(20))
    positives, anchors = torch.full((200,), 19), torch.arange(200) % 20
    out = hard.sample(positives, 5, anchors=anchors, scorer=by_id)
    assert out.mask.all()
    assert not torch.isin(out.ids, torch.tensor([0, 1, 2])).any()
    assert set(out.ids.unique().tolist()) == set(range(3, 10))


def test_softmax_skip_top_is_never_valid_when_the_pool_runs_short():
    # Regression: with fewer than K + skip_top usable candidates, the skipped best came back as
    # a valid negative. Pools of 4 uniform draws over {0, 1, 2} against positive 0 hold at most
    # two usable ids, 1 and 2; id 2 scores best whenever it is there, so it is always skipped.
    hard = HardNegativeSampler(
        base=UniformSampler(), pool_size=4, selection="softmax", skip_top=1, seed=0
    )
    hard.setup(torch.ones(3))
    positives = torch.zeros(64, dtype=torch.int64)

    def score_is_id(anchors: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        return candidates.float()

    valid_ones = 0
    for _ in range(50):
        out = hard.sample(positives, 3, anchors=positives, scorer=score_is_id)
        assert out.ids.shape == (64, 3)
        assert not (out.mask & (out.ids == 2)).any()
        assert not (out.mask & (out.ids == 0)).any()
        assert (out.mask.sum(dim=1) <= 1).all()  # one usable id left at most, after the skip
        valid_ones += int(out.mask.sum())
    assert valid_ones > 0  # id 1 does come through when the pool also has a 2


@pytest.mark.parametrize("selection", ["topk", "softmax"])
@pytest.mark.parametrize(
    ("n", "k", "skip_top", "columns"),
    [(4, 2, 0, 2), (4, 3, 0, 3), (4, 3, 1, 2), (4, 2, 2, 1), (3, 2, 2, 0), (2, 3, 1, 0),
     (1, 1, 0, 0)],
)
def test_a_base_with_fewer_columns_than_the_pool_gives_fewer_negatives(
    selection: str, n: int, k: int, skip_top: int, columns: int
):
    # In-batch returns the N - 1 other positives, fewer than pool_size: min(K, N - 1 - skip_top)
    # columns instead of an error.
    v = 12
    hard = HardNegativeSampler(
        InBatchSampler(), pool_size=8, selection=selection, skip_top=skip_top,
        temperature=0.01, seed=1,
    )
    hard.setup(torch.ones(v))
    positives = torch.tensor([7, 2, 9, 4])[:n]
    anchors = torch.tensor([0, 1, 2, 3])[:n]
    scorer = embedding_scorer(v, seed=3)
    out = hard.sample(positives, k, anchors=anchors, scorer=scorer)
    assert out.ids.shape == (n, columns) and out.mask.shape == (n, columns)
    assert out.mask.all()
    for row in range(n):
        pool = torch.cat([positives[:row], positives[row + 1 :]])
        scores = scorer(anchors[row : row + 1], pool[None, :])[0]
        expected = brute_force_best(scores, torch.ones(n - 1, dtype=torch.bool), pool, columns,
                                    skip_top)
        if selection == "topk":
            assert out.ids[row].tolist() == expected
        else:  # a cold softmax: the same ids, the skipped ones never among them
            assert sorted(out.ids[row].tolist()) == sorted(expected)


# ---------------------------------------------------------------------------- errors
def test_pool_smaller_than_k_plus_skip_top_raises():
    hard = HardNegativeSampler(UniformSampler(), pool_size=5, skip_top=2)
    hard.setup(torch.ones(10))
    hard.sample(torch.tensor([1]), 3, anchors=torch.tensor([0]), scorer=by_id)  # 3 + 2 fits
    with pytest.raises(ValueError, match="pool_size"):
        hard.sample(torch.tensor([1]), 4, anchors=torch.tensor([0]), scorer=by_id)


@pytest.mark.parametrize("temperature", [0.0, -1.0, float("nan")])
def test_non_positive_temperature_raises(temperature: float):
    with pytest.raises(ValueError, match="temperature"):
        HardNegativeSampler(UniformSampler(), selection="softmax", temperature=temperature)


def test_unknown_selection_raises():
    with pytest.raises(ValueError, match="selection"):
        HardNegativeSampler(UniformSampler(), selection="best")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs", [{"pool_size": 0}, {"skip_top": -1}, {"refresh_every": 0}, {"chunk_size": 0},
               {"num_anchors": 0}]
)
def test_bad_sizes_raise(kwargs: dict[str, int]):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        IndexHardNegativeSampler(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("missing", ["anchors", "scorer", "both"])
def test_missing_anchors_or_scorer_raises(missing: str):
    hard = HardNegativeSampler(UniformSampler(), pool_size=4)
    hard.setup(torch.ones(10))
    kwargs = {"anchors": torch.tensor([0, 1]), "scorer": by_id}
    if missing == "both":
        kwargs = {}
    else:
        del kwargs[missing]
    with pytest.raises(ValueError, match="anchors= and scorer="):
        hard.sample(torch.tensor([2, 3]), 2, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("base", [True, False])
def test_scorer_with_the_wrong_shape_raises(base: bool):
    hard = (
        HardNegativeSampler(UniformSampler(), pool_size=4) if base
        else IndexHardNegativeSampler(pool_size=4)
    )
    hard.setup(torch.ones(10))

    def flat_scorer(anchors: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        return candidates.float().reshape(-1)

    with pytest.raises(ValueError, match="scorer returned shape"):
        hard.sample(torch.tensor([2, 3]), 2, anchors=torch.tensor([0, 1]), scorer=flat_scorer)


def test_index_pool_larger_than_the_vocabulary_raises_at_setup():
    hard = IndexHardNegativeSampler(pool_size=11)
    with pytest.raises(ValueError, match="pool_size 11"):
        hard.setup(torch.ones(10))
    IndexHardNegativeSampler(pool_size=10).setup(torch.ones(10))  # exactly V is fine


@pytest.mark.parametrize("never_drawn", [[0, 1], [1, 0, 1], [9, 3]])
def test_index_pool_larger_than_the_minable_items_raises_at_setup(never_drawn: list[int]):
    # Two of the ten items are never mined: eight are left.
    hard = IndexHardNegativeSampler(pool_size=9, never_drawn=never_drawn)
    with pytest.raises(ValueError, match="pool_size 9"):
        hard.setup(torch.ones(10))
    fits = IndexHardNegativeSampler(pool_size=8, never_drawn=never_drawn)
    fits.setup(torch.ones(10))
    assert fits.index.shape == (10, 8)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"never_drawn": [0]}, "never_drawn"), ({"num_anchors": 5}, "num_anchors"),
     ({"never_drawn": [3, 4], "num_anchors": 7}, "index mode")],
)
def test_index_mode_options_with_a_base_raise(kwargs: dict[str, object], match: str):
    with pytest.raises(ValueError, match=match):
        HardNegativeSampler(UniformSampler(), pool_size=4, **kwargs)  # type: ignore[arg-type]
    IndexHardNegativeSampler(pool_size=4, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [5, 9, -1])
def test_index_anchor_out_of_range_raises(bad: int):
    hard = IndexHardNegativeSampler(pool_size=4, num_anchors=5)
    hard.setup(torch.ones(10))
    with pytest.raises(IndexError, match="num_anchors"):
        hard.sample(torch.tensor([1, 2]), 2, anchors=torch.tensor([0, bad]), scorer=by_id)


def test_index_accepts_anchor_ids_beyond_the_vocabulary():
    # num_anchors decouples anchors (e.g. users) from the item vocabulary.
    table = random_table(30, 10, seed=1)
    hard = IndexHardNegativeSampler(pool_size=4, num_anchors=30)
    hard.setup(torch.ones(10))
    out = hard.sample(torch.tensor([1]), 2, anchors=torch.tensor([25]), scorer=TableScorer(table))
    assert out.ids[0].tolist() == brute_force_best(table[25], torch.arange(10) != 1,
                                                   torch.arange(10), 2)


# ---------------------------------------------------------------------------- index mode
@pytest.mark.parametrize("selection", ["topk", "softmax"])
def test_index_mode_never_selects_a_hit_while_the_pool_has_enough_others(selection: str):
    # Pools of 7 of the 8 items: the positive and 3 excluded ids leave at least 3 others.
    v = 8
    hard = IndexHardNegativeSampler(
        pool_size=7, selection=selection, temperature=0.5, chunk_size=3, seed=1
    )
    hard.setup(torch.ones(v))
    gen = torch.Generator().manual_seed(5)
    positives = torch.randint(0, v, (64,), generator=gen)
    anchors = torch.randint(0, v, (64,), generator=gen)
    exclude = torch.randint(-1, v, (64, 3), generator=gen)
    out = hard.sample(positives, 3, anchors=anchors, scorer=embedding_scorer(v), exclude=exclude)
    hits = (out.ids == positives[:, None]) | (out.ids[..., None] == exclude[:, None, :]).any(-1)
    assert out.mask.all() and not hits.any()


def test_index_mode_topk_is_the_vocabulary_brute_force():
    v, k, num_anchors = 40, 5, 12
    table = random_table(num_anchors, v, seed=7)
    hard = IndexHardNegativeSampler(pool_size=k + 3, num_anchors=num_anchors, refresh_every=1)
    hard.setup(torch.ones(v))
    gen = torch.Generator().manual_seed(8)
    for _ in range(3):
        positives = torch.randint(0, v, (16,), generator=gen)
        anchors = torch.randint(0, num_anchors, (16,), generator=gen)
        exclude = torch.randint(-1, v, (16, 2), generator=gen)
        out = hard.sample(positives, k, anchors=anchors, scorer=TableScorer(table),
                          exclude=exclude)
        assert out.mask.all()
        for row in range(16):
            hits = {int(positives[row]), *exclude[row].tolist()}
            usable = torch.tensor([i not in hits for i in range(v)])
            expected = brute_force_best(table[anchors[row]], usable, torch.arange(v), k)
            assert out.ids[row].tolist() == expected


@pytest.mark.parametrize(("chunk_size", "mining_scores"), [(3, 1), (3, 22), (7, 1 << 22), (40, 1)])
def test_chunked_mining_equals_brute_force(
    chunk_size: int, mining_scores: int, monkeypatch: pytest.MonkeyPatch
):
    # MINING_SCORES = 1 mines one anchor per block, 22 two anchors (22 // (3 + 8)).
    monkeypatch.setattr(index_module, "MINING_SCORES", mining_scores)
    v, pool_size, num_anchors = 40, 8, 7
    table = random_table(num_anchors, v, seed=chunk_size)
    hard = IndexHardNegativeSampler(
        pool_size=pool_size, num_anchors=num_anchors, chunk_size=chunk_size
    )
    hard.setup(torch.ones(v))
    anchors = torch.tensor([6, 0, 3, 3, 1, 5, 2, 4])
    hard.sample(torch.zeros(8, dtype=torch.int64), 2, anchors=anchors, scorer=TableScorer(table))
    expected = table.topk(pool_size, dim=1).indices
    assert torch.equal(hard.index.long(), expected)
    assert hard.index.dtype == torch.int32


@pytest.mark.parametrize(("chunk_size", "mining_scores"), [(3, 1), (3, 22), (7, 1 << 22), (40, 1)])
def test_mining_with_scorer_mine_equals_brute_force_and_the_plain_scorer(
    chunk_size: int, mining_scores: int, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(index_module, "MINING_SCORES", mining_scores)
    v, pool_size, num_anchors = 40, 8, 7
    table = random_table(num_anchors, v, seed=10 + chunk_size)
    anchors = torch.tensor([6, 0, 3, 3, 1, 5, 2, 4])
    positives = torch.zeros(8, dtype=torch.int64)

    def make() -> IndexHardNegativeSampler:
        hard = IndexHardNegativeSampler(
            pool_size=pool_size, num_anchors=num_anchors, chunk_size=chunk_size
        )
        hard.setup(torch.ones(v))
        return hard

    with_mine, plain = make(), make()
    scorer = MiningScorer(table)
    a = with_mine.sample(positives, 3, anchors=anchors, scorer=scorer)
    b = plain.sample(positives, 3, anchors=anchors, scorer=TableScorer(table))
    expected = table.topk(pool_size, dim=1).indices
    assert torch.equal(with_mine.index.long(), expected)
    assert torch.equal(plain.index, with_mine.index)
    assert torch.equal(a.ids, b.ids) and torch.equal(a.mask, b.mask)
    # mine did the mining: each (anchor, item) pair once, anchors (A,) against items (C,)...
    assert scorer.mined
    pairs = []
    for mined_anchors, items in scorer.mined:
        assert mined_anchors.dim() == 1 and items.dim() == 1
        assert items.numel() <= chunk_size
        pairs += [(int(x), int(i)) for x in mined_anchors for i in items]
    assert sorted(pairs) == sorted((x, i) for x in range(num_anchors) for i in range(v))
    # ...and the plain call only re-scored the pools of the sampled rows.
    assert scorer.call_shapes == [(8, pool_size)]


def test_a_scorer_without_mine_mines_with_the_plain_call():
    table = random_table(3, 20, seed=5)
    scorer = TableScorer(table)
    assert not hasattr(scorer, "mine")
    hard = IndexHardNegativeSampler(pool_size=4, num_anchors=3, chunk_size=20)
    hard.setup(torch.ones(20))
    hard.sample(torch.tensor([0, 0]), 2, anchors=torch.tensor([1, 2]), scorer=scorer)
    assert scorer.calls == 2  # the vocabulary (one chunk, one block), then the pool
    assert torch.equal(hard.index[1:].long(), table[1:].topk(4, dim=1).indices)


def test_scorer_mine_with_the_wrong_shape_raises():
    table = random_table(4, 10, seed=2)
    hard = IndexHardNegativeSampler(pool_size=4, num_anchors=4, chunk_size=5)
    hard.setup(torch.ones(10))
    with pytest.raises(ValueError, match=r"scorer\.mine returned shape"):
        hard.sample(torch.tensor([0, 0]), 2, anchors=torch.tensor([1, 3]),
                    scorer=MiningScorer(table, wrong_shape=True))


def test_never_drawn_ids_are_never_mined():
    never = [0, 1, 2, 7]
    hard = IndexHardNegativeSampler(pool_size=6, never_drawn=never, chunk_size=4)
    hard.setup(torch.ones(20))
    anchors = torch.arange(20)
    out = hard.sample(torch.full((20,), 19), 3, anchors=anchors, scorer=by_id)
    # by_id prefers the never_drawn ids; the index holds the next best ones instead.
    assert hard.index.tolist() == [[3, 4, 5, 6, 8, 9]] * 20
    assert out.ids.tolist() == [[3, 4, 5]] * 20
    assert out.mask.all()


def test_index_entries_are_refreshed_only_when_stale():
    v, num_anchors, pool_size = 20, 4, 5
    old_table, new_table = random_table(num_anchors, v, 0), random_table(num_anchors, v, 1)
    old_top, new_top = (t.topk(pool_size, dim=1).indices.int() for t in (old_table, new_table))
    assert not torch.equal(old_top[0], new_top[0])
    scorer = TableScorer(old_table)
    hard = IndexHardNegativeSampler(pool_size=pool_size, num_anchors=num_anchors,
                               refresh_every=3)
    hard.setup(torch.ones(v))
    assert hard.age.tolist() == [-1] * num_anchors and int(hard.calls) == 0

    def call(anchor_ids: list[int]) -> torch.Tensor:
        anchors = torch.tensor(anchor_ids)
        return hard.sample(torch.full_like(anchors, 19), 2, anchors=anchors, scorer=scorer).ids

    call([0, 1])
    assert int(hard.calls) == 1 and hard.age.tolist() == [1, 1, -1, -1]
    assert torch.equal(hard.index[0], old_top[0]) and torch.equal(hard.index[1], old_top[1])
    scorer.table = new_table  # the model changes
    ids = call([0, 2])
    assert int(hard.calls) == 2 and hard.age.tolist() == [1, 1, 2, -1]
    assert torch.equal(hard.index[0], old_top[0])  # one call old: kept
    assert torch.equal(hard.index[2], new_top[2])  # never mined: mined with the current model
    # The kept pool is re-scored with the current model.
    pool = old_top[0].long()
    usable = pool != 19
    assert ids[0].tolist() == brute_force_best(new_table[0, pool], usable, pool, 2)
    call([0])
    assert int(hard.calls) == 3 and hard.age.tolist() == [1, 1, 2, -1]
    assert torch.equal(hard.index[0], old_top[0])
    call([0, 0])
    assert int(hard.calls) == 4 and hard.age.tolist() == [4, 1, 2, -1]
    assert torch.equal(hard.index[0], new_top[0])  # three calls old: mined again
    assert torch.equal(hard.index[1], old_top[1])  # not asked for: untouched
    assert int(hard.index[3].abs().sum()) == 0  # never asked for: never mined


def test_index_mode_scores_the_vocabulary_only_when_mining():
    table = random_table(3, 30, seed=2)
    scorer = TableScorer(table)
    hard = IndexHardNegativeSampler(pool_size=4, num_anchors=3, chunk_size=10, refresh_every=5)
    hard.setup(torch.ones(30))
    hard.sample(torch.tensor([0, 0]), 2, anchors=torch.tensor([1, 2]), scorer=scorer)
    assert scorer.calls == 3 + 1  # three chunks of the vocabulary (one block), then the pool
    hard.sample(torch.tensor([0, 0]), 2, anchors=torch.tensor([1, 2]), scorer=scorer)
    assert scorer.calls == 4 + 1  # fresh entries: only the pool is scored


def test_setup_resets_the_index():
    hard = IndexHardNegativeSampler(pool_size=4, refresh_every=10)
    hard.setup(torch.ones(12))
    hard.sample(torch.tensor([0]), 2, anchors=torch.tensor([3]), scorer=by_id)
    assert int(hard.calls) == 1 and int(hard.age[3]) == 1
    hard.setup(torch.ones(15))
    assert hard.index.shape == (15, 4)
    assert int(hard.calls) == 0 and (hard.age == -1).all()


@pytest.mark.parametrize("through_bytes", [False, True])
def test_index_checkpoint_round_trip(through_bytes: bool):
    v, num_anchors = 25, 6
    table = random_table(num_anchors, v, seed=4)

    def make() -> IndexHardNegativeSampler:
        return IndexHardNegativeSampler(
            pool_size=8, num_anchors=num_anchors, refresh_every=2, selection="softmax",
            temperature=0.5, seed=6,
        )

    original = make()
    original.setup(torch.ones(v))
    gen = torch.Generator().manual_seed(0)

    def batch() -> tuple[torch.Tensor, torch.Tensor]:
        return torch.randint(0, v, (5,), generator=gen), torch.randint(0, num_anchors, (5,),
                                                                       generator=gen)

    for _ in range(3):
        positives, anchors = batch()
        original.sample(positives, 3, anchors=anchors, scorer=TableScorer(table))
    state = original.state_dict()
    if through_bytes:
        state = saved_and_loaded(state)
    fresh = make()  # never set up: the index is sized from the checkpoint
    fresh.load_state_dict(state)
    assert torch.equal(fresh.index, original.index) and fresh.index.dtype == torch.int32
    assert torch.equal(fresh.age, original.age)
    assert int(fresh.calls) == int(original.calls) == 3
    assert fresh.vocab_size == v
    table = table.flip(1)  # a changed model: stale entries are mined again on both
    for _ in range(4):
        positives, anchors = batch()
        a = original.sample(positives, 3, anchors=anchors, scorer=TableScorer(table))
        b = fresh.sample(positives, 3, anchors=anchors, scorer=TableScorer(table))
        assert torch.equal(a.ids, b.ids) and torch.equal(a.mask, b.mask)
    assert torch.equal(fresh.index, original.index) and torch.equal(fresh.age, original.age)


def test_pool_mode_checkpoint_round_trip_continues_identically():
    scorer = embedding_scorer(30, seed=1)
    original = HardNegativeSampler(UniformSampler(), pool_size=12, selection="softmax", seed=2)
    original.setup(torch.ones(30))
    positives = torch.arange(10)
    original.sample(positives, 3, anchors=positives, scorer=scorer)
    fresh = HardNegativeSampler(UniformSampler(), pool_size=12, selection="softmax", seed=99)
    fresh.load_state_dict(original.state_dict())
    for _ in range(3):
        a = original.sample(positives, 3, anchors=positives, scorer=scorer)
        b = fresh.sample(positives, 3, anchors=positives, scorer=scorer)
        assert torch.equal(a.ids, b.ids)


# ---------------------------------------------------------------------------- empty batches
@pytest.mark.parametrize("mode", ["pool", "index"])
@pytest.mark.parametrize("selection", ["topk", "softmax"])
@pytest.mark.parametrize("width", [0, 3])
def test_an_empty_batch_gives_empty_negatives(mode: str, selection: str, width: int):
    hard = (
        HardNegativeSampler(UniformSampler(), pool_size=6, selection=selection, skip_top=1)
        if mode == "pool"
        else IndexHardNegativeSampler(pool_size=6, selection=selection, skip_top=1)
    )
    hard.setup(torch.ones(10))
    empty = torch.zeros(0, dtype=torch.int64)
    out = hard.sample(empty, 3, anchors=empty, scorer=by_id,
                      exclude=torch.zeros((0, width), dtype=torch.int64))
    assert out.ids.shape == (0, 3) and out.mask.shape == (0, 3)
    assert out.ids.dtype == torch.int64 and out.mask.dtype == torch.bool
    assert out.log_q is None


def test_observe_reaches_a_memory_bank_base():
    bank = MemoryBankSampler(6)
    hard = HardNegativeSampler(bank, pool_size=4)
    hard.setup(torch.ones(10))
    hard.observe(torch.tensor([[2, 5], [7, 5]]))
    assert bank.contents().tolist() == [2, 5, 7, 5]
