"""The contrastive task: known positives never count as negatives, it learns a relation, it
ranks, exports, checkpoints, and refuses mismatched data."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from gensim.models import KeyedVectors
from torch import Tensor

from nslightning.callbacks import Word2VecExport
from nslightning.data import PairDataModule
from nslightning.deprecation import NSLightningDeprecationWarning
from nslightning.losses import InfoNCELoss, NegativeSamplingLoss, WeightedContrastiveLoss
from nslightning.samplers import (
    HardNegativeSampler,
    InBatchSampler,
    IndexHardNegativeSampler,
    MemoryBankSampler,
    MixedSampler,
    NegativeSampler,
    UniformSampler,
    UnigramSampler,
)
from nslightning.samplers.base import Draw, DrawRequest
from nslightning.tasks import ContrastiveTask
from nslightning.tasks.contrastive import PairStep
from tests.corpora import write_groups
from tests.trainers import quiet_trainer as trainer


class RecordingLoss(NegativeSamplingLoss):
    """Wraps a loss and keeps what the task passed it."""

    def __init__(self, inner: NegativeSamplingLoss) -> None:
        super().__init__()
        self.inner = inner
        self.calls: list[dict[str, Tensor | None]] = []

    @property
    def uses_log_q(self) -> bool:
        return self.inner.uses_log_q

    def forward(  # type: ignore[no-untyped-def]
        self, pos_scores, neg_scores, *, neg_mask=None, log_q=None, weights=None, pos_log_q=None
    ):
        self.calls.append({"neg_mask": neg_mask, "weights": weights, "log_q": log_q})
        return self.inner(
            pos_scores, neg_scores, neg_mask=neg_mask, log_q=log_q, weights=weights,
            pos_log_q=pos_log_q,
        )


class KnownPositiveSampler(NegativeSampler):
    """Draws, for every row, the anchor's own known items (the worst possible negatives), and
    records the request."""

    def __init__(self, known: dict[int, list[int]]) -> None:
        super().__init__()
        self.known = known
        self.requests: list[DrawRequest] = []

    def _setup(self, counts: Tensor) -> None:
        pass

    def _draw(self, request: DrawRequest) -> Draw:
        self.requests.append(request)
        assert request.anchors is not None
        rows = [self.known[a][: request.num_negatives] for a in request.anchors.tolist()]
        width = request.num_negatives
        ids = torch.tensor([r + [r[0]] * (width - len(r)) for r in rows])
        return Draw(ids, torch.zeros(ids.shape))


def known_items(data: PairDataModule) -> dict[int, list[int]]:
    known: dict[int, list[int]] = {}
    pairs = data.train_pairs
    for a, i in zip(pairs.anchors.tolist(), pairs.items.tolist(), strict=True):
        known.setdefault(a, []).append(i)
    return known


@pytest.fixture
def groups(tmp_path: Path) -> PairDataModule:
    data = PairDataModule(str(write_groups(tmp_path / "pairs.tsv")), batch_size=16)
    data.setup("fit")
    return data


def test_known_positives_are_masked_and_passed_as_exclude(
    groups: PairDataModule, tmp_path: Path
) -> None:
    sampler = KnownPositiveSampler(known_items(groups))
    loss = RecordingLoss(WeightedContrastiveLoss())
    task = ContrastiveTask(groups.vocab_size, groups.num_anchors, dim=4, num_negatives=3,
                           sampler=sampler, loss=loss, max_exclude=2, diagnostics_every=0)
    trainer(tmp_path, limit_train_batches=3, limit_val_batches=0).fit(task, groups)
    assert loss.calls and all(not call["neg_mask"].any() for call in loss.calls)
    request = sampler.requests[0]
    assert request.exclude is not None and request.exclude.shape[1] == 2
    assert request.scorer is not None and request.anchors is not None
    known = known_items(groups)
    for anchor, row in zip(request.anchors.tolist(), request.exclude.tolist(), strict=True):
        assert [i for i in row if i >= 0] == sorted(known[anchor])[:2]
    assert all(call["weights"] is not None for call in loss.calls)


def test_the_task_moves_its_own_copy_of_the_known_positives(
    groups: PairDataModule, tmp_path: Path
) -> None:
    task = ContrastiveTask(groups.vocab_size, groups.num_anchors, dim=4, diagnostics_every=0)
    trainer(tmp_path, limit_train_batches=1, limit_val_batches=0).fit(task, groups)
    assert task.known is not None and task.known is not groups.train_known
    task.to("meta")
    assert groups.train_known.keys.device.type == "cpu"
    assert task.known.keys.device.type == "meta"


def test_accidental_hits_positive_lets_known_positives_through(
    groups: PairDataModule, tmp_path: Path
) -> None:
    sampler = KnownPositiveSampler(known_items(groups))
    loss = RecordingLoss(WeightedContrastiveLoss())
    task = ContrastiveTask(groups.vocab_size, groups.num_anchors, dim=4, num_negatives=3,
                           sampler=sampler, loss=loss, accidental_hits="positive",
                           diagnostics_every=0)
    trainer(tmp_path, limit_train_batches=2, limit_val_batches=0).fit(task, groups)
    assert sampler.requests[0].exclude is None
    # the only masked slots left are the sampler's own hits (the row's positive item)
    assert any(call["neg_mask"].any() for call in loss.calls)


def test_hard_negatives_never_select_known_positives(groups: PairDataModule) -> None:
    task = ContrastiveTask(groups.vocab_size, groups.num_anchors, dim=4, num_negatives=4,
                           sampler=HardNegativeSampler(base=UniformSampler(), pool_size=16))
    task.known = groups.train_known
    task.sampler.setup(groups.counts)
    batch = next(iter(groups.train_dataloader()))
    anchors, items = batch["anchors"], batch["items"]
    from nslightning.models import PairScorer

    # make known positives the highest-scoring items, then mine
    with torch.no_grad():
        task.embeddings.item_encoder.weight.zero_()
        task.embeddings.anchor_encoder.weight.fill_(1.0)
        task.embeddings.item_encoder.weight[groups.train_pairs.items] = 5.0
    scorer = PairScorer(task.embeddings, groups.train_known.contains)
    negatives = task.sampler.sample(items, 4, anchors=anchors, scorer=scorer)
    valid = negatives.mask
    known = groups.train_known.contains(anchors.unsqueeze(1), negatives.ids)
    assert not (known & valid).any()


@pytest.mark.parametrize(
    "make_sampler",
    [
        lambda: UniformSampler(),
        lambda: UnigramSampler(power=0.75, unique=True, redraw=True),
        lambda: InBatchSampler(),
        lambda: MemoryBankSampler(size=64),
        lambda: MixedSampler([InBatchSampler(), UniformSampler()], shares=[0.5, 0.5]),
        lambda: HardNegativeSampler(base=UniformSampler(), pool_size=12),
        lambda: IndexHardNegativeSampler(pool_size=12, refresh_every=2, num_anchors=24),
    ],
    ids=["uniform", "unigram_unique_redraw", "in_batch", "memory_bank", "mixed", "hard_pool",
         "hard_index"],
)
def test_every_sampler_trains(
    groups: PairDataModule, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_sampler
) -> None:
    loss = RecordingLoss(WeightedContrastiveLoss())
    task = ContrastiveTask(groups.vocab_size, groups.num_anchors, dim=4, num_negatives=3,
                           sampler=make_sampler(), loss=loss, diagnostics_every=1)
    steps: list[tuple[dict[str, Tensor], PairStep]] = []
    batch_loss = task.batch_loss

    def recording(batch: dict[str, Tensor]) -> PairStep:
        steps.append((batch, batch_loss(batch)))
        return steps[-1][1]

    monkeypatch.setattr(task, "batch_loss", recording)
    tables = {"anchors": task.embeddings.anchor_encoder.weight,
              "items": task.embeddings.item_encoder.weight}
    before = {name: table.detach().clone() for name, table in tables.items()}
    run = trainer(tmp_path, limit_train_batches=3)
    run.fit(task, groups)
    assert run.global_step == 3 and len(steps) == len(loss.calls) == 3
    moved = {name: not torch.equal(before[name], table) for name, table in tables.items()}
    assert moved == {"anchors": True, "items": True}
    assert all(torch.isfinite(table).all() for table in tables.values())
    for (batch, step), call in zip(steps, loss.calls, strict=True):
        # the loss masks exactly the known positives of the anchor (its own item among them)
        ids = step.negatives.ids
        known = groups.train_known.contains(batch["anchors"].unsqueeze(1), ids)
        assert known[ids == batch["items"].unsqueeze(1)].all()
        assert torch.equal(call["neg_mask"], ~known) and call["neg_mask"].any()
        assert torch.equal(step.negatives.mask, ~known)
        assert call["weights"] is not None and torch.equal(call["weights"], batch["weights"])
    last = steps[-1][1]
    logged = run.callback_metrics
    assert torch.isfinite(last.loss) and logged["train/loss"].item() == last.loss.item()
    masked = 1.0 - last.negatives.mask.float().mean()
    assert logged["train/masked_share"].item() == pytest.approx(masked.item())


@pytest.mark.parametrize("score", ["dot", "cosine", "euclidean"])
def test_it_learns_the_relation(tmp_path: Path, score: str) -> None:
    torch.manual_seed(0)
    data = PairDataModule(str(write_groups(tmp_path / "pairs.tsv")), batch_size=16)
    data.setup("fit")
    loss = InfoNCELoss(temperature=0.2 if score == "cosine" else 1.0)
    task = ContrastiveTask(data.vocab_size, data.num_anchors, dim=8, score=score,
                           num_negatives=5, sampler=UniformSampler(), loss=loss, lr=0.05,
                           diagnostics_every=0)
    before = trainer(tmp_path).validate(task, data, verbose=False)[0]
    trainer(tmp_path, epochs=30, limit_val_batches=0).fit(task, data)
    after = trainer(tmp_path).validate(task, data, verbose=False)[0]
    # 32 items, each anchor has 3 of its group's 8: random ranks give MAP about 0.1
    assert before["val/map"] < 0.35
    assert after["val/map"] > 0.6 and after["val/mean_rank"] < before["val/mean_rank"] / 2
    assert 0 < after["val/mrr"] <= 1 and 0 <= after["val/hits@1"] <= after["val/hits@10"] <= 1


def test_lambda_schedule_is_followed_and_logged(groups: PairDataModule, tmp_path: Path) -> None:
    from nslightning.losses import LinearWarmup

    loss = WeightedContrastiveLoss(lam=LinearWarmup(end=2.0, steps=4))
    task = ContrastiveTask(groups.vocab_size, groups.num_anchors, dim=4, loss=loss,
                           diagnostics_every=0)
    trainer(tmp_path, limit_train_batches=6, limit_val_batches=0).fit(task, groups)
    assert loss.lam == 2.0  # steps 4 and 5 are past the warm-up


def test_export_both_tables_in_word2vec_format(groups: PairDataModule, tmp_path: Path) -> None:
    task = ContrastiveTask(groups.vocab_size, groups.num_anchors, dim=4, diagnostics_every=0)
    callbacks = [Word2VecExport(str(tmp_path / "anchors.txt")),
                 Word2VecExport(str(tmp_path / "items.bin"), binary=True, table="items")]
    run = trainer(tmp_path, limit_train_batches=1, limit_val_batches=0, callbacks=callbacks)
    run.fit(task, groups)
    anchors = KeyedVectors.load_word2vec_format(str(tmp_path / "anchors.txt"))
    items = KeyedVectors.load_word2vec_format(str(tmp_path / "items.bin"), binary=True)
    assert len(anchors) == groups.num_anchors and len(items) == groups.vocab_size
    row = groups.item_vocabulary["item0_1"]
    assert np.allclose(items["item0_1"], task.embeddings.item_encoder.weight[row].detach().numpy())
    with pytest.raises(ValueError, match="no table 'words'"):
        Word2VecExport(str(tmp_path / "x.txt"), table="words").export(
            SimpleNamespace(datamodule=groups), task  # type: ignore[arg-type]
        )


def test_size_mismatch_is_refused(groups: PairDataModule, tmp_path: Path) -> None:
    task = ContrastiveTask(groups.vocab_size + 1, groups.num_anchors, dim=4)
    with pytest.raises(ValueError, match="size mismatch"):
        trainer(tmp_path, limit_train_batches=1).fit(task, groups)


def test_checkpoint_of_another_relation_is_refused(tmp_path: Path) -> None:
    data = PairDataModule(str(write_groups(tmp_path / "a.tsv")), batch_size=16)
    data.setup("fit")
    task = ContrastiveTask(data.vocab_size, data.num_anchors, dim=4, diagnostics_every=0)
    run = trainer(tmp_path, limit_train_batches=1, limit_val_batches=0)
    run.fit(task, data)
    checkpoint = tmp_path / "task.ckpt"
    run.save_checkpoint(checkpoint)
    # same sizes, other ids: item names renamed
    text = (tmp_path / "a.tsv").read_text().replace("item", "thing")
    (tmp_path / "b.tsv").write_text(text)
    other = PairDataModule(str(tmp_path / "b.tsv"), batch_size=16)
    with pytest.raises(ValueError, match="another relation"):
        trainer(tmp_path, epochs=2, limit_train_batches=1, limit_val_batches=0).fit(
            ContrastiveTask(data.vocab_size, data.num_anchors, dim=4), other, ckpt_path=checkpoint
        )


def test_bad_arguments_are_refused(groups: PairDataModule) -> None:
    with pytest.raises(ValueError, match="num_negatives"):
        ContrastiveTask(10, num_negatives=0)
    with pytest.raises(ValueError, match="shared_vocabulary"):
        ContrastiveTask(10, num_anchors=5, shared_embeddings=True)
    with pytest.raises(ValueError, match="lam"):
        WeightedContrastiveLoss(lam=-1.0)
    with pytest.raises(ValueError, match="score"):
        ContrastiveTask(10, score="manhattan")  # type: ignore[arg-type]


def test_shared_table_needs_one_id_space(tmp_path: Path) -> None:
    path = tmp_path / "square.tsv"  # as many anchors as items, but two id spaces
    path.write_text("a\tx\nb\ty\n")
    data = PairDataModule(str(path))
    task = ContrastiveTask(2, 2, dim=4, shared_embeddings=True, num_negatives=1)
    with pytest.raises(ValueError, match="shared_vocabulary"):
        trainer(tmp_path, limit_train_batches=1).fit(task, data)


def test_in_one_id_space_the_anchor_is_never_its_own_negative(tmp_path: Path) -> None:
    path = tmp_path / "tree.tsv"
    path.write_text("".join(f"n{i}\tn{i // 2}\n" for i in range(2, 12)))
    data = PairDataModule(str(path), shared_vocabulary=True)
    data.setup("fit")

    class AnchorSampler(KnownPositiveSampler):
        def _draw(self, request: DrawRequest) -> Draw:
            assert request.anchors is not None
            ids = request.anchors.unsqueeze(1).expand(-1, request.num_negatives)
            return Draw(ids.clone(), torch.zeros(ids.shape))

    loss = RecordingLoss(WeightedContrastiveLoss())
    task = ContrastiveTask(data.vocab_size, data.num_anchors, dim=4, num_negatives=2,
                           shared_embeddings=True, sampler=AnchorSampler({}), loss=loss,
                           diagnostics_every=0)
    trainer(tmp_path, limit_train_batches=1, limit_val_batches=0).fit(task, data)
    assert not loss.calls[0]["neg_mask"].any()


def test_debiased_loss_with_distance_scores_warns() -> None:
    from nslightning.losses import DebiasedContrastiveLoss

    with pytest.warns(UserWarning, match="min_score"):
        ContrastiveTask(20, score="euclidean", loss=DebiasedContrastiveLoss())


@pytest.mark.parametrize(
    "make_sampler",
    [UnigramSampler, UniformSampler, lambda: MemoryBankSampler(size=64),
     lambda: MixedSampler([UniformSampler(), UnigramSampler()], shares=[0.5, 0.5]),
     lambda: HardNegativeSampler(base=UniformSampler(), pool_size=40)],
    ids=["unigram", "uniform", "memory_bank", "mixed", "hard"],
)
def test_as_many_negatives_as_items_is_refused(groups: PairDataModule, make_sampler) -> None:
    items = groups.vocab_size
    with pytest.raises(
        ValueError, match=rf"num_negatives={items} >= number of items {items}: "
        rf".*--model\.num_negatives below {items}.*all_others",
    ):
        ContrastiveTask(items, groups.num_anchors, num_negatives=items, sampler=make_sampler())
    ContrastiveTask(items, groups.num_anchors, num_negatives=items - 1, sampler=make_sampler())


def test_in_batch_negatives_may_outnumber_the_items(groups: PairDataModule, tmp_path: Path) -> None:
    """In-batch candidates are the batch's positives: K only caps them, whatever V is."""
    items = groups.vocab_size
    task = ContrastiveTask(items, groups.num_anchors, dim=4, num_negatives=items + 5,
                           sampler=InBatchSampler(all_others=True), diagnostics_every=0)
    trainer(tmp_path, limit_train_batches=2, limit_val_batches=0).fit(task, groups)
    assert torch.isfinite(task.embeddings.item_encoder.weight).all()


def test_filter_known_is_the_deprecated_spelling_of_accidental_hits() -> None:
    with pytest.warns(NSLightningDeprecationWarning, match="accidental_hits='positive'"):
        task = ContrastiveTask(20, filter_known=False)
    assert task.accidental_hits == "positive"
    with pytest.warns(NSLightningDeprecationWarning, match="accidental_hits='known'"):
        assert ContrastiveTask(20, filter_known=True).accidental_hits == "known"
    with pytest.raises(ValueError, match="supports accidental_hits positive or known"):
        ContrastiveTask(20, accidental_hits="keep")
