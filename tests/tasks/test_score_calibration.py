"""Score calibration ``s' = (s + b) / t``: the λ-weighted loss on distance scores."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from nslightning.data import PairDataModule
from nslightning.losses import InfoNCELoss, NCELoss, SGNSLoss, WeightedContrastiveLoss
from nslightning.models import ScoreCalibration
from nslightning.samplers import UniformSampler
from nslightning.tasks import ContrastiveTask
from tests.trainers import quiet_trainer as trainer


def test_calibration_is_an_affine_map_with_a_positive_temperature() -> None:
    scores = torch.tensor([-3.0, -1.0, 0.5])
    fixed = ScoreCalibration(bias=2.0, temperature=0.5)
    torch.testing.assert_close(fixed(scores), (scores + 2.0) / 0.5)
    assert [name for name, _ in fixed.named_parameters()] == ["bias"]
    learned = ScoreCalibration()
    assert {name for name, _ in learned.named_parameters()} == {"bias", "log_temperature"}
    with torch.no_grad():
        learned.log_temperature.fill_(-50.0)
    assert learned.temperature > 0
    learned(scores).sum().backward()
    assert learned.bias.grad is not None and learned.log_temperature.grad is not None


@pytest.mark.parametrize("bad", [0.0, -1.0, math.inf, math.nan])
def test_a_bad_temperature_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
        ScoreCalibration(temperature=bad)


@pytest.mark.parametrize(
    ("score", "loss", "expected"),
    [("euclidean", WeightedContrastiveLoss(), True), ("euclidean", NCELoss(), True),
     ("euclidean", SGNSLoss(), True), ("euclidean", InfoNCELoss(), False),
     ("dot", WeightedContrastiveLoss(), False), ("cosine", WeightedContrastiveLoss(), False)],
)
def test_on_by_default_for_distance_scores_and_pointwise_losses(
    score: str, loss: torch.nn.Module, expected: bool
) -> None:
    task = ContrastiveTask(5, score=score, loss=loss, num_negatives=2)  # type: ignore[arg-type]
    assert (task.calibration is not None) == expected
    forced = ContrastiveTask(5, score=score, loss=loss, num_negatives=2,  # type: ignore[arg-type]
                             calibrate=not expected)
    assert (forced.calibration is not None) != expected


def chain(tmp_path: Path) -> PairDataModule:
    """The closure of the chain c -> b -> a: (c, b), (c, a), (b, a) in one id space."""
    path = tmp_path / "chain.tsv"
    path.write_text("c\tb\nc\ta\nb\ta\n", encoding="utf-8")
    data = PairDataModule(str(path), shared_vocabulary=True, batch_size=3, seed=0)
    data.setup("fit")
    return data


def fit_chain(tmp_path: Path, calibrate: bool) -> tuple[ContrastiveTask, dict[str, float]]:
    pl.seed_everything(0, verbose=False)
    data = chain(tmp_path)
    task = ContrastiveTask(
        data.vocab_size, data.num_anchors, dim=2, shared_embeddings=True, score="euclidean",
        num_negatives=2, sampler=UniformSampler(), loss=WeightedContrastiveLoss(lam=1.0),
        lr=0.05, init_scale=0.1, calibrate=calibrate, diagnostics_every=0,
    )
    fit = trainer(tmp_path, epochs=300, check_val_every_n_epoch=300)
    fit.fit(task, data)
    return task, {name: float(value) for name, value in fit.callback_metrics.items()}


def test_a_calibrated_distance_fits_a_chain(tmp_path: Path) -> None:
    """With λ = 1 and -distance scores the calibrated loss reconstructs the chain (MAP 1) and
    makes the positives probable; without calibration no positive can ever reach probability
    1/2. (The pair (c, b) is a positive of c and (b, c) a negative of b: a distance is
    symmetric, so they share one logit, which the ranking of b's candidates does not need.)"""
    task, metrics = fit_chain(tmp_path, calibrate=True)
    assert metrics["val/map"] == 1.0
    ids = {name: task.trainer.datamodule.anchor_vocabulary[name] for name in "abc"}
    anchors = torch.tensor([ids["c"], ids["c"], ids["b"], ids["b"]])
    items = torch.tensor([[ids["b"]], [ids["a"]], [ids["a"]], [ids["c"]]])
    assert task.calibration is not None
    with torch.no_grad():
        logits = task.calibration(task.embeddings(anchors, items)).squeeze(1)
    assert (logits[1:3] > 0).all() and logits[3] < logits[2], logits
    assert metrics["train/calibration_bias"] > 0

    plain, _ = fit_chain(tmp_path, calibrate=False)
    with torch.no_grad():
        scores = plain.embeddings(anchors, items).squeeze(1)
    assert (scores[:3] < 0).all()  # σ(-d) < 1/2 for every positive


def test_old_checkpoints_load_into_encoders_and_need_calibrate_false(tmp_path: Path) -> None:
    """Checkpoints from before encoders and calibration: their table keys are renamed, and a
    model that would calibrate says how to load one trained without."""
    old = ContrastiveTask(6, dim=3, score="euclidean", num_negatives=2)
    state = {key.replace("anchor_encoder.table", "anchor_table")
             .replace("item_encoder.table", "item_table"): value
             for key, value in old.state_dict().items() if not key.startswith("calibration")}
    assert "embeddings.anchor_table.weight" in state
    new = ContrastiveTask(6, dim=3, score="euclidean", num_negatives=2, calibrate=False)
    new.on_load_checkpoint({"state_dict": state})
    new.load_state_dict(state)
    torch.testing.assert_close(new.embeddings.anchor_encoder.weight,
                               old.embeddings.anchor_encoder.weight)
    with pytest.raises(ValueError, match=r"--model\.calibrate false"):
        ContrastiveTask(6, dim=3, score="euclidean", num_negatives=2).on_load_checkpoint(
            {"state_dict": dict(state)})


def test_a_checkpoint_calibrated_otherwise_says_how_to_load_it() -> None:
    learned = ContrastiveTask(6, dim=3, score="euclidean", num_negatives=2,
                              calibration_temperature=None)
    state = dict(learned.state_dict())
    with pytest.raises(ValueError, match=r"--model\.calibrate true"):
        ContrastiveTask(6, dim=3, score="euclidean", num_negatives=2,
                        calibrate=False).on_load_checkpoint({"state_dict": dict(state)})
    with pytest.raises(ValueError, match=r"temperature was learned: set "
                                         r"--model\.calibration_temperature null"):
        ContrastiveTask(6, dim=3, score="euclidean",
                        num_negatives=2).on_load_checkpoint({"state_dict": dict(state)})
    fixed = ContrastiveTask(6, dim=3, score="euclidean", num_negatives=2,
                            calibration_temperature=2.0)
    assert "calibration.log_temperature" not in fixed.state_dict()  # a hyperparameter
    with pytest.raises(ValueError, match="calibration_temperature must be a finite number > 0"):
        ContrastiveTask(6, dim=3, num_negatives=2, calibration_temperature=0.0)
