"""The contrastive task over encoders (μ̂_φ): bags of features train, reuse in-batch vectors,
score hard negatives and evaluation in chunks, refuse bad side files, and encode held-out
entities for the Lee judgments."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from torch import Tensor

from nslightning.callbacks import LeeDocumentSimilarity
from nslightning.data import PairDataModule
from nslightning.losses import InfoNCELoss
from nslightning.models import pair_embeddings
from nslightning.models.encoders import BagOfFeatures, EmbeddingTable
from nslightning.models.pair_embeddings import PairEmbeddings, PairScorer
from nslightning.samplers import HardNegativeSampler, InBatchSampler, UniformSampler
from nslightning.tasks import ContrastiveTask
from tests.corpora import write_groups
from tests.trainers import quiet_trainer as trainer


def side_files(folder: Path, data: PairDataModule) -> tuple[Path, Path]:
    """Bags for the anchors (``user<g>_<a>``: their group and their own id) and the items
    (their group, their own id and a shared feature)."""
    anchors, items = folder / "anchors.tsv", folder / "items.tsv"
    anchors.write_text("".join(
        f"{name}\tgroup{name.split('_')[0][4:]} {name}\n" for name in data.anchor_vocabulary
    ), encoding="utf-8")
    items.write_text("".join(
        f"{name}\tgroup{name.split('_')[0][4:]} {name} any\n" for name in data.item_vocabulary
    ), encoding="utf-8")
    return anchors, items


@pytest.fixture
def groups(tmp_path: Path) -> PairDataModule:
    data = PairDataModule(str(write_groups(tmp_path / "pairs.tsv")), batch_size=16, seed=0)
    data.setup("fit")
    return data


def bag_task(groups: PairDataModule, folder: Path, **options: object) -> ContrastiveTask:
    anchors, items = side_files(folder, groups)
    defaults: dict[str, object] = {
        "dim": 8, "num_negatives": 5, "lr": 0.05, "diagnostics_every": 0,
        "anchor_encoder": BagOfFeatures(str(anchors), hidden=[6]),
        "item_encoder": BagOfFeatures(str(items)),
    }
    return ContrastiveTask(groups.vocab_size, groups.num_anchors, **{**defaults, **options})


def test_gradients_reach_every_encoder_parameter(groups: PairDataModule, tmp_path: Path) -> None:
    task = bag_task(groups, tmp_path)
    before = {name: p.detach().clone() for name, p in task.named_parameters()}
    assert {"embeddings.anchor_encoder.bag.weight", "embeddings.anchor_encoder.mlp.0.weight",
            "embeddings.item_encoder.bag.weight"} <= set(before)
    trainer(tmp_path, limit_val_batches=0).fit(task, groups)
    for name, param in task.named_parameters():
        if name.startswith("embeddings."):
            assert not torch.equal(param.detach(), before[name]), f"{name} did not train"


def test_one_feature_per_id_trains_exactly_like_a_table(groups: PairDataModule,
                                                        tmp_path: Path) -> None:
    """A bag of one feature, the id itself, is a table row: the same seed gives the same
    training run, step for step, and the same evaluation."""
    for side, vocabulary in (("a", groups.anchor_vocabulary), ("i", groups.item_vocabulary)):
        (tmp_path / f"{side}.tsv").write_text(
            "".join(f"{name}\t{name}\n" for name in vocabulary), encoding="utf-8")
    results = []
    for encoders in ({}, {"anchor_encoder": BagOfFeatures(str(tmp_path / "a.tsv")),
                          "item_encoder": BagOfFeatures(str(tmp_path / "i.tsv"))}):
        pl.seed_everything(3, verbose=False)
        task = ContrastiveTask(groups.vocab_size, groups.num_anchors, dim=8, num_negatives=5,
                               sampler=UniformSampler(seed=1), diagnostics_every=0, **encoders)
        with torch.no_grad():  # the same vectors for the same ids (the bags are in file order)
            for encoder, count in ((task.embeddings.anchor_encoder, groups.num_anchors),
                                   (task.embeddings.item_encoder, groups.vocab_size)):
                weight = encoder.weight if isinstance(encoder, EmbeddingTable) \
                    else encoder.bag.weight[:count]
                weight.copy_(torch.linspace(-1, 1, weight.numel()).view_as(weight))
        fit = trainer(tmp_path, epochs=2)
        fit.fit(task, groups)
        results.append((task.embeddings.anchor_vectors().clone(),
                        task.embeddings.item_vectors().clone(),
                        {k: float(v) for k, v in fit.callback_metrics.items()}))
    (tables_a, tables_i, table_metrics), (bags_a, bags_i, bag_metrics) = results
    torch.testing.assert_close(bags_a, tables_a)
    torch.testing.assert_close(bags_i, tables_i)
    assert bag_metrics.keys() == table_metrics.keys()
    for name, value in table_metrics.items():
        assert bag_metrics[name] == pytest.approx(value, rel=1e-5), name


def test_in_batch_negatives_reuse_the_positives_vectors(groups: PairDataModule, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """With in-batch negatives the item encoder runs once per positive, not once per
    (row, negative), and the scores equal those of encoding every candidate by id."""
    task = bag_task(groups, tmp_path, sampler=InBatchSampler(all_others=True),
                    loss=InfoNCELoss())
    task.bind_encoders(groups)
    task.sampler.setup(groups.counts)
    batch = next(iter(groups.train_dataloader()))
    encoded: list[int] = []
    encode = task.embeddings.encode_items

    def counting(ids: Tensor) -> Tensor:
        encoded.append(ids.numel())
        return encode(ids)

    monkeypatch.setattr(task.embeddings, "encode_items", counting)
    negatives = task.sampler.sample(batch["items"], 100, anchors=batch["anchors"])
    assert negatives.positions is not None
    reused = task.pair_scores(batch["anchors"], batch["items"], negatives)
    assert encoded == [len(batch["items"])]
    candidates = torch.cat([batch["items"].unsqueeze(1), negatives.ids], dim=1)
    torch.testing.assert_close(reused, task.embeddings(batch["anchors"], candidates))


def test_hard_negatives_and_evaluation_encode_in_chunks(groups: PairDataModule, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pair_embeddings, "ENCODE_CHUNK", 7)  # several chunks per call
    task = bag_task(groups, tmp_path,
                    sampler=HardNegativeSampler(base=UniformSampler(), pool_size=12))
    trainer(tmp_path, epochs=1).fit(task, groups)
    model = task.embeddings
    anchors = torch.arange(groups.num_anchors)
    with torch.no_grad():
        every = model.geometry.all_pairs(model.encode_anchors(anchors),
                                         model.encode_items(torch.arange(groups.vocab_size)))
    torch.testing.assert_close(model.score_all(anchors), every)
    candidates = torch.randint(0, groups.vocab_size, (groups.num_anchors, 9))
    scorer = PairScorer(model)
    torch.testing.assert_close(scorer(anchors, candidates), every.gather(1, candidates))
    assert not torch.is_grad_enabled() or scorer(anchors, candidates).grad_fn is None


def test_a_relation_id_missing_from_the_side_file_is_a_clear_error(
    groups: PairDataModule, tmp_path: Path
) -> None:
    anchors, _ = side_files(tmp_path, groups)
    lines = anchors.read_text(encoding="utf-8").splitlines(keepends=True)
    anchors.write_text("".join(lines[1:]), encoding="utf-8")  # the first anchor has no bag
    missing = lines[0].split("\t")[0]
    task = ContrastiveTask(groups.vocab_size, groups.num_anchors, dim=8, diagnostics_every=0,
                           anchor_encoder=BagOfFeatures(str(anchors)))
    with pytest.raises(ValueError, match=f"1 of the 24 ids have no line.*'{missing}'"):
        trainer(tmp_path).fit(task, groups)


def test_shared_embeddings_take_one_encoder(groups: PairDataModule, tmp_path: Path) -> None:
    anchors, items = side_files(tmp_path, groups)
    with pytest.raises(ValueError, match="one encoder for both sides"):
        PairEmbeddings(10, 10, 4, shared=True, anchor_encoder=BagOfFeatures(str(anchors)),
                       item_encoder=BagOfFeatures(str(items)))


def test_held_out_lee_documents_are_encoded_by_name(tmp_path: Path) -> None:
    data = PairDataModule("lee-background-doc-words", batch_size=4096)
    task = ContrastiveTask(data.vocab_size, 300, dim=8, score="cosine", diagnostics_every=0,
                           loss=InfoNCELoss(temperature=0.1),
                           anchor_encoder=BagOfFeatures("lee-doc-bags"))
    similarity = LeeDocumentSimilarity()
    trainer(tmp_path, callbacks=[similarity], limit_train_batches=2,
            limit_val_batches=1).fit(task, data)
    assert set(similarity.last_results) == {"lee_pearson", "lee_spearman"}
    names = [f"lee:{i}" for i in range(50)]
    expected = task.embeddings.anchor_encoder.encode_names(names).detach()
    torch.testing.assert_close(task.embeddings.encode_anchor_names(names), expected)


def test_lee_judgments_without_the_documents_say_how_to_get_them(tmp_path: Path) -> None:
    data = PairDataModule("lee-background-doc-words", batch_size=4096)
    task = ContrastiveTask(data.vocab_size, 300, dim=8, diagnostics_every=0)
    with pytest.raises(RuntimeError, match="lee-doc-bags"):
        trainer(tmp_path, callbacks=[LeeDocumentSimilarity()], limit_train_batches=1,
                limit_val_batches=1).fit(task, data)


@pytest.mark.parametrize("across_ranks", [False, True])
def test_vectors_are_gathered_only_when_the_sampler_drew_across_ranks(
    groups: PairDataModule, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, across_ranks: bool
) -> None:
    """Without ``across_ranks`` the positions index the rank's own positives: gathering the
    other ranks' vectors would hand every rank rank 0's items."""
    from nslightning.tasks import contrastive

    task = bag_task(groups, tmp_path, loss=InfoNCELoss(),
                    sampler=InBatchSampler(all_others=True, across_ranks=across_ranks))
    task.bind_encoders(groups)
    task.sampler.setup(groups.counts)
    gathered: list[int] = []

    def gather(vectors: Tensor) -> Tensor:
        gathered.append(len(vectors))
        return vectors

    monkeypatch.setattr(contrastive, "gather_with_gradients", gather)
    batch = next(iter(groups.train_dataloader()))
    negatives = task.sampler.sample(batch["items"], 100, anchors=batch["anchors"])
    task.pair_scores(batch["anchors"], batch["items"], negatives)
    assert gathered == ([len(batch["items"])] if across_ranks else [])


def test_sparse_adam_is_refused_when_a_parameter_gets_dense_gradients(
    groups: PairDataModule, tmp_path: Path
) -> None:
    calibrated = ContrastiveTask(groups.vocab_size, groups.num_anchors, dim=4, num_negatives=3,
                                 score="euclidean", sparse=True,
                                 optimizer=torch.optim.SparseAdam, diagnostics_every=0)
    assert calibrated.calibration is not None
    with pytest.raises(ValueError, match=r"SparseAdam .* calibration\.bias .*--model\.calibrate"):
        trainer(tmp_path).fit(calibrated, groups)
    tables_only = ContrastiveTask(groups.vocab_size, groups.num_anchors, dim=4, num_negatives=3,
                                  score="euclidean", sparse=True, calibrate=False,
                                  optimizer=torch.optim.SparseAdam, diagnostics_every=0)
    trainer(tmp_path, limit_val_batches=0).fit(tables_only, groups)
