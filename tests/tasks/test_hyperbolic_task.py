"""The contrastive task in hyperbolic space: Riemannian optimizers keep the tables on the
manifold, a burn-in lowers the first epochs' learning rate, and every sampler works as is."""

from __future__ import annotations

from pathlib import Path

import geoopt
import pytest
import pytorch_lightning as pl
import torch

from nslightning.data import PairDataModule
from nslightning.losses import InfoNCELoss
from nslightning.models.encoders import BagOfFeatures
from nslightning.samplers import (
    HardNegativeSampler,
    InBatchSampler,
    NegativeSampler,
    UniformSampler,
    UnigramSampler,
)
from nslightning.tasks import ContrastiveTask
from tests.trainers import quiet_trainer as trainer


@pytest.fixture
def hypernyms() -> PairDataModule:
    data = PairDataModule("gensim-hypernyms", shared_vocabulary=True, batch_size=16, seed=0)
    data.setup("fit")
    return data


def task_for(data: PairDataModule, score: str, **options: object) -> ContrastiveTask:
    defaults: dict[str, object] = {
        "dim": 3, "shared_embeddings": True, "score": score, "num_negatives": 5,
        "loss": InfoNCELoss(), "init_scale": 1e-3, "diagnostics_every": 0,
    }
    return ContrastiveTask(data.vocab_size, data.num_anchors, **{**defaults, **options})


def on_manifold(points: torch.Tensor, score: str) -> bool:
    if score == "poincare":
        return bool((points.norm(dim=-1) < 1).all())
    # on the hyperboloid x0 = sqrt(1 + |x_1:|^2) (relative: far points are large in float32)
    points = points.double()
    time = (1 + points[:, 1:].square().sum(-1)).sqrt()
    return bool(torch.allclose(points[:, 0], time, rtol=1e-4, atol=1e-4))


@pytest.mark.parametrize("score", ["poincare", "lorentz"])
@pytest.mark.parametrize("optimizer", [None, geoopt.optim.RiemannianSGD])
def test_tables_stay_on_the_manifold_under_a_reckless_learning_rate(
    hypernyms: PairDataModule, tmp_path: Path, score: str, optimizer: object
) -> None:
    task = task_for(hypernyms, score, lr=50.0, optimizer=optimizer)
    weight = task.embeddings.anchor_encoder.weight
    assert isinstance(weight, geoopt.ManifoldParameter)
    assert weight.shape[1] == (4 if score == "lorentz" else 3)
    start = weight.detach().clone()
    fit = trainer(tmp_path, epochs=5)
    fit.fit(task, hypernyms)
    expected = optimizer or geoopt.optim.RiemannianAdam
    assert type(fit.optimizers[0]) is expected
    points = task.embeddings.anchor_encoder.weight.detach()
    assert torch.isfinite(points).all() and on_manifold(points, score)
    assert not torch.equal(points, start)
    exported = task.embedding_tables()["anchors"]  # Poincaré-ball coordinates either way
    assert exported.shape == (hypernyms.num_anchors, 3) and (exported.norm(dim=-1) < 1).all()


@pytest.mark.parametrize("score", ["poincare", "lorentz"])
def test_a_euclidean_optimizer_is_refused(hypernyms: PairDataModule, tmp_path: Path,
                                          score: str) -> None:
    task = task_for(hypernyms, score, optimizer=torch.optim.Adam)
    with pytest.raises(ValueError, match=r"geoopt\.optim\.RiemannianAdam"):
        trainer(tmp_path).fit(task, hypernyms)
    with pytest.raises(ValueError, match=r"--model\.sparse false"):
        task_for(hypernyms, score, sparse=True)


class LearningRates(pl.Callback):
    def __init__(self) -> None:
        self.rates: list[float] = []

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.rates.append(trainer.optimizers[0].param_groups[0]["lr"])


def test_burn_in_trains_the_first_epochs_at_a_lower_rate(hypernyms: PairDataModule,
                                                         tmp_path: Path) -> None:
    task = task_for(hypernyms, "poincare", lr=0.3, burn_in_epochs=2, burn_in_lr_factor=0.1)
    rates = LearningRates()
    trainer(tmp_path, epochs=4, callbacks=[rates], limit_val_batches=0).fit(task, hypernyms)
    assert rates.rates == pytest.approx([0.03, 0.03, 0.3, 0.3])
    with pytest.raises(ValueError, match="burn_in_lr_factor"):
        task_for(hypernyms, "poincare", burn_in_lr_factor=0.0)


@pytest.mark.parametrize(
    "sampler",
    [UniformSampler(), UnigramSampler(), InBatchSampler(all_others=True),
     HardNegativeSampler(base=UniformSampler(), pool_size=10)],
    ids=["uniform", "unigram", "in_batch", "hard"],
)
@pytest.mark.parametrize("score", ["poincare", "lorentz"])
def test_every_sampler_trains_a_hyperbolic_model(hypernyms: PairDataModule, tmp_path: Path,
                                                 score: str, sampler: NegativeSampler) -> None:
    task = task_for(hypernyms, score, sampler=sampler, lr=0.1)
    fit = trainer(tmp_path, epochs=3)
    fit.fit(task, hypernyms)
    assert torch.isfinite(fit.callback_metrics["train/loss"])
    assert 0 < float(fit.callback_metrics["val/map"]) <= 1


@pytest.mark.parametrize("score", ["poincare", "lorentz"])
def test_a_neural_encoder_is_mapped_onto_the_manifold(hypernyms: PairDataModule, tmp_path: Path,
                                                      score: str) -> None:
    side = tmp_path / "features.tsv"
    side.write_text("".join(f"{name}\t{name} {name.split('.')[0]}\n"
                            for name in hypernyms.anchor_vocabulary), encoding="utf-8")
    task = task_for(hypernyms, score, anchor_encoder=BagOfFeatures(str(side), hidden=[4]),
                    lr=0.05)
    trainer(tmp_path, epochs=2).fit(task, hypernyms)
    points = task.embeddings.encode_anchors(torch.arange(hypernyms.num_anchors)).detach()
    assert points.shape[1] == (4 if score == "lorentz" else 3) and on_manifold(points, score)


def test_the_command_line_trains_a_lorentz_model_with_riemannian_sgd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nslightning.cli import build_cli
    from tests.cli_args import CONFIGS

    monkeypatch.chdir(tmp_path)
    cli = build_cli([
        "fit", "-c", str(CONFIGS / "contrastive_pairs.yaml"), "--trainer.max_epochs", "2",
        "--trainer.enable_progress_bar", "false", "--trainer.logger", "false",
        "--model.score", "lorentz", "--model.optimizer", "geoopt.optim.RiemannianSGD",
        "--model.lr", "0.5", "--model.burn_in_epochs", "1", "--model.dim", "4",
    ])
    assert type(cli.trainer.optimizers[0]) is geoopt.optim.RiemannianSGD
    points = cli.model.embeddings.anchor_encoder.weight.detach()
    assert points.shape[1] == 5 and on_manifold(points, "lorentz")
    assert cli.trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.5)  # burnt in


def test_adam_trains_encoders_whose_outputs_are_mapped_onto_the_manifold(
    hypernyms: PairDataModule, tmp_path: Path
) -> None:
    """No parameter is on the manifold when both sides are neural encoders (their outputs are
    mapped onto it): a Euclidean optimizer is then right, and accepted."""
    side = tmp_path / "features.tsv"
    side.write_text("".join(f"{name}\t{name}\n" for name in hypernyms.anchor_vocabulary),
                    encoding="utf-8")
    task = task_for(hypernyms, "poincare", anchor_encoder=BagOfFeatures(str(side)),
                    optimizer=torch.optim.Adam)
    fit = trainer(tmp_path, limit_val_batches=0)
    fit.fit(task, hypernyms)
    assert type(fit.optimizers[0]) is torch.optim.Adam
