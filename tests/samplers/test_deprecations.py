"""Old spellings and checkpoints of nslightning 0.1 still work, and say what replaces them.

* ``HardNegativeSampler`` without a ``base`` (index mode) builds an ``IndexHardNegativeSampler``;
* the sampler attribute ``num_items`` is now ``vocab_size``;
* checkpoints saved before both changes load into today's classes and continue identically
  (``data/legacy_checkpoints.pt``, written by ``data/make_legacy_checkpoints.py``).
"""

from __future__ import annotations

import copy
import io
import pickle
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch

from nslightning.deprecation import NSLightningDeprecationWarning
from nslightning.samplers import (
    HardNegativeSampler,
    InBatchSampler,
    IndexHardNegativeSampler,
    MixedSampler,
    NegativeSampler,
    UniformSampler,
    UnigramSampler,
)
from tests.samplers.data.make_legacy_checkpoints import (
    ANCHORS,
    NUM_NEGATIVES,
    POSITIVES,
    scorer,
)

LEGACY = Path(__file__).with_name("data") / "legacy_checkpoints.pt"
INDEX_OPTIONS: dict[str, Any] = {
    "pool_size": 5, "selection": "softmax", "temperature": 0.5, "skip_top": 1,
    "refresh_every": 2, "num_anchors": 6, "chunk_size": 3, "never_drawn": [0], "seed": 7,
}


def by_id(anchors: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    return -candidates.float() + 0 * anchors[:, None]


@contextmanager
def no_deprecation_warning() -> Iterator[None]:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        yield
    assert not [w for w in seen if issubclass(w.category, NSLightningDeprecationWarning)]


# ---------------------------------------------------------------------------- index mode
@pytest.mark.parametrize(
    "spell",
    [
        lambda: HardNegativeSampler(),
        lambda: HardNegativeSampler(None, pool_size=5),
        lambda: HardNegativeSampler(base=None, **INDEX_OPTIONS),
    ],
    ids=["no-arguments", "positional-none", "keyword-none"],
)
def test_hard_negative_sampler_without_a_base_warns_and_builds_the_index_sampler(
    spell: Callable[[], NegativeSampler],
) -> None:
    with pytest.warns(NSLightningDeprecationWarning, match="use IndexHardNegativeSampler") as seen:
        sampler = spell()
    assert type(sampler) is IndexHardNegativeSampler
    assert not isinstance(sampler, HardNegativeSampler)
    assert seen[0].filename == __file__  # the warning points at the caller's line


def test_the_old_spelling_takes_every_index_option() -> None:
    with pytest.warns(NSLightningDeprecationWarning):
        old = HardNegativeSampler(**INDEX_OPTIONS)
    new = IndexHardNegativeSampler(**INDEX_OPTIONS)
    for option in ("pool_size", "selection", "temperature", "skip_top", "refresh_every",
                   "num_anchors", "chunk_size", "never_drawn", "seed"):
        assert getattr(old, option) == getattr(new, option), option
    with pytest.warns(NSLightningDeprecationWarning):
        defaults = HardNegativeSampler(pool_size=4)
    assert (defaults.refresh_every, defaults.chunk_size, defaults.num_anchors) == (1000, 8192, None)


def test_the_old_spelling_draws_as_the_index_sampler_under_the_same_seed() -> None:
    with pytest.warns(NSLightningDeprecationWarning):
        old = HardNegativeSampler(**INDEX_OPTIONS)
    new = IndexHardNegativeSampler(**INDEX_OPTIONS)
    for sampler in (old, new):
        sampler.setup(torch.ones(12))
    gen = torch.Generator().manual_seed(0)
    for _ in range(4):
        positives = torch.randint(0, 12, (9,), generator=gen)
        anchors = torch.randint(0, 6, (9,), generator=gen)
        a = old.sample(positives, 3, anchors=anchors, scorer=by_id)
        b = new.sample(positives, 3, anchors=anchors, scorer=by_id)
        assert torch.equal(a.ids, b.ids) and torch.equal(a.mask, b.mask)
    assert old.state_dict().keys() == new.state_dict().keys()
    assert torch.equal(old.index, new.index) and torch.equal(old.age, new.age)


def test_pool_mode_needs_no_warning_and_keeps_its_old_arguments() -> None:
    with no_deprecation_warning():
        pool = HardNegativeSampler(UniformSampler(), 8)
        # A config saved by nslightning 0.1 lists every argument: the index options of pool
        # mode were ignored, and still are.
        saved = HardNegativeSampler(UniformSampler(), pool_size=8, refresh_every=1000,
                                    chunk_size=8192, num_anchors=None, never_drawn=None)
    assert type(pool) is HardNegativeSampler and type(saved) is HardNegativeSampler
    assert pool.pool_size == saved.pool_size == 8
    with pytest.raises(ValueError, match="index mode"):
        HardNegativeSampler(UniformSampler(), never_drawn=[0])


@pytest.mark.parametrize("how", ["deepcopy", "pickle", "torch.save"])
def test_copies_of_a_pool_sampler_stay_pool_samplers(how: str) -> None:
    original = HardNegativeSampler(UnigramSampler(), pool_size=6, selection="softmax", seed=3)
    original.setup(torch.arange(1.0, 11.0))
    positives = torch.arange(8) % 10
    original.sample(positives, 2, anchors=positives, scorer=by_id)
    with no_deprecation_warning():
        if how == "deepcopy":
            twin = copy.deepcopy(original)
        elif how == "pickle":
            twin = pickle.loads(pickle.dumps(original))
        else:
            buffer = io.BytesIO()
            torch.save(original, buffer)
            buffer.seek(0)
            twin = torch.load(buffer, weights_only=False)
    assert type(twin) is HardNegativeSampler and twin.base is not original.base
    for _ in range(3):
        a = original.sample(positives, 2, anchors=positives, scorer=by_id)
        b = twin.sample(positives, 2, anchors=positives, scorer=by_id)
        assert torch.equal(a.ids, b.ids) and torch.equal(a.mask, b.mask)


# ---------------------------------------------------------------------------- num_items
def test_num_items_warns_and_reads_vocab_size() -> None:
    sampler = UnigramSampler()
    sampler.setup(torch.ones(7))
    with pytest.warns(NSLightningDeprecationWarning, match="num_items .* use vocab_size"):
        assert sampler.num_items == 7 == sampler.vocab_size
    with pytest.raises(AttributeError):
        sampler.num_items = 3  # type: ignore[misc]


def test_checkpoints_write_vocab_size_and_pool_mode_saves_no_index() -> None:
    pool = HardNegativeSampler(UniformSampler(), pool_size=4)
    pool.setup(torch.ones(9))
    state = pool.state_dict()
    assert state["_extra_state"]["vocab_size"] == 9 and "num_items" not in state["_extra_state"]
    assert state["base._extra_state"]["vocab_size"] == 9
    assert not {"index", "age", "calls"} & set(state)


# ---------------------------------------------------------------------------- 0.1 checkpoints
def quietly_old_index() -> NegativeSampler:
    with pytest.warns(NSLightningDeprecationWarning):
        return HardNegativeSampler(
            pool_size=5, refresh_every=2, selection="softmax", temperature=0.5, chunk_size=3,
            seed=99,
        )


LEGACY_TARGETS: dict[str, tuple[str, Callable[[], NegativeSampler]]] = {
    "unigram": ("unigram", lambda: UnigramSampler(power=0.75, seed=99)),
    "mixed": (
        "mixed", lambda: MixedSampler([InBatchSampler(), UniformSampler()], [0.5, 0.5], seed=99)
    ),
    "hard-pool": (
        "hard-pool",
        lambda: HardNegativeSampler(
            UnigramSampler(power=0.75), pool_size=6, selection="softmax", skip_top=1, seed=99
        ),
    ),
    "hard-index": (
        "hard-index",
        lambda: IndexHardNegativeSampler(
            pool_size=5, refresh_every=2, selection="softmax", temperature=0.5, chunk_size=3,
            seed=99,
        ),
    ),
    "hard-index-old-spelling": ("hard-index", quietly_old_index),
}


@pytest.mark.parametrize("target", sorted(LEGACY_TARGETS))
def test_a_checkpoint_of_nslightning_0_1_loads_and_continues_identically(target: str) -> None:
    entry, factory = LEGACY_TARGETS[target]
    saved = torch.load(LEGACY, weights_only=True)[entry]
    assert "num_items" in saved["state"]["_extra_state"]  # truly the old layout
    sampler = factory()  # another seed, never set up: all of it comes from the checkpoint
    sampler.load_state_dict(saved["state"])  # strict: no key is left over or missing
    assert sampler.vocab_size == 8
    for component in sampler.components():
        assert component.vocab_size == 8
    out = sampler.sample(POSITIVES, NUM_NEGATIVES, anchors=ANCHORS, scorer=scorer)
    assert torch.equal(out.ids, saved["ids"]) and torch.equal(out.mask, saved["mask"])
    if saved["log_q"] is None:
        assert out.log_q is None
    else:
        assert out.log_q is not None and torch.equal(out.log_q, saved["log_q"])
