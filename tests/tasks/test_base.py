"""What every task inherits from NegativeSamplingTask: the DataModule contract, sampler and loss
compatibility from declared capabilities, the loss's log_q inputs, optimizer checks, the CLI's
task class and old checkpoints of the language model."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from torch import Tensor

from nslightning.cli import build_cli
from nslightning.data import PairDataModule
from nslightning.losses import InfoNCELoss, NCELoss, NegativeSamplingLoss, SampledSoftmaxLoss
from nslightning.samplers import (
    HardNegativeSampler,
    InBatchSampler,
    UniformSampler,
    UnigramSampler,
)
from nslightning.tasks import ContrastiveTask, LanguageModelTask, SkipGramTask
from tests.corpora import write_groups


class Recording(NegativeSamplingLoss):
    """InfoNCE with the logQ correction that keeps the log_q and pos_log_q it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = InfoNCELoss(correct_log_q=True)
        self.calls: list[tuple[Tensor | None, Tensor | None]] = []

    @property
    def uses_log_q(self) -> bool:
        return True

    def forward(  # type: ignore[no-untyped-def]
        self, pos_scores, neg_scores, *, neg_mask=None, log_q=None, weights=None, pos_log_q=None
    ):
        self.calls.append((log_q, pos_log_q))
        return self.inner(pos_scores, neg_scores, neg_mask=neg_mask, log_q=log_q, weights=weights)


@pytest.fixture
def groups(tmp_path: Path) -> PairDataModule:
    data = PairDataModule(str(write_groups(tmp_path / "pairs.tsv")), batch_size=16)
    data.setup("fit")
    return data


def fit(task: pl.LightningModule, data: pl.LightningDataModule, steps: int = 1) -> pl.Trainer:
    trainer = pl.Trainer(max_steps=steps, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         accelerator="cpu", limit_val_batches=0, num_sanity_val_steps=0)
    trainer.fit(task, data)
    return trainer


class CountsOnly(pl.LightningDataModule):
    """A DataModule with counts but neither vocab_size nor vocabularies()."""

    counts = torch.ones(10)

    def train_dataloader(self) -> list:
        return []


def test_a_datamodule_without_the_contract_is_named_with_what_it_lacks() -> None:
    task = ContrastiveTask(10, dim=4, num_negatives=3)
    with pytest.raises(RuntimeError, match=r"CountsOnly: it lacks vocab_size, vocabularies"):
        fit(task, CountsOnly())


@pytest.mark.parametrize(
    ("sampler", "loss", "message"),
    [
        (HardNegativeSampler(UniformSampler()), InfoNCELoss(correct_log_q=True),
         "InfoNCELoss corrects with log_q, but HardNegativeSampler gives none"),
        (InBatchSampler(), NCELoss(), "NCELoss needs a fixed noise distribution"),
        (UnigramSampler(unique=True), NCELoss(), "NCELoss needs a fixed noise distribution"),
    ],
)
def test_sampler_and_loss_that_do_not_fit_are_refused_when_built(sampler, loss, message) -> None:
    with pytest.raises(ValueError, match=message):
        ContrastiveTask(20, dim=4, sampler=sampler, loss=loss)
    with pytest.raises(ValueError, match=message):
        SkipGramTask(20, dim=4, sampler=sampler, loss=loss)


def test_nce_with_a_fixed_distribution_trains_in_every_task(groups: PairDataModule) -> None:
    task = ContrastiveTask(groups.vocab_size, groups.num_anchors, dim=4, num_negatives=3,
                           sampler=UniformSampler(), loss=NCELoss(), diagnostics_every=0)
    fit(task, groups, steps=2)
    assert task.global_step == 2


@pytest.mark.parametrize("sampler_name", ["unigram", "unique", "in_batch"])
def test_the_loss_gets_per_draw_log_q_and_the_positives_log_q(
    groups: PairDataModule, sampler_name: str
) -> None:
    samplers = {"unigram": UnigramSampler(seed=1), "unique": UnigramSampler(seed=1, unique=True),
                "in_batch": InBatchSampler(seed=1)}
    sampler, loss = samplers[sampler_name], Recording()
    draws = []
    sample = sampler.sample

    def recording_sample(positives, *args, **kwargs):
        negatives = sample(positives, *args, **kwargs)
        draws.append((positives, negatives))
        return negatives

    sampler.sample = recording_sample  # type: ignore[method-assign]
    task = ContrastiveTask(groups.vocab_size, groups.num_anchors, dim=4, num_negatives=3,
                           sampler=sampler, loss=loss, diagnostics_every=0)
    fit(task, groups)
    (log_q, pos_log_q), (items, drawn) = loss.calls[0], draws[0]
    assert log_q is not None and drawn.log_q is not None
    if sampler_name == "unique":  # the inclusion probability, as a per-draw one: π / K
        assert sampler.log_q_kind == "inclusion"
        torch.testing.assert_close(log_q, drawn.log_q - math.log(3))
    else:
        torch.testing.assert_close(log_q, drawn.log_q)
    if sampler.fixed_distribution:
        expected = sampler.log_prob(items.unsqueeze(1), items).squeeze(1)
        torch.testing.assert_close(pos_log_q, expected)
    else:  # no closed form for the positive: it stays uncorrected
        assert pos_log_q is None


def test_sparse_tables_refuse_optimizers_that_would_move_untouched_rows() -> None:
    task = ContrastiveTask(20, dim=4, sparse=True, optimizer=torch.optim.Adam)
    with pytest.raises(ValueError, match="Adam with these options cannot train sparse"):
        task.configure_optimizers()
    assert isinstance(ContrastiveTask(20, dim=4, sparse=True, optimizer=torch.optim.SparseAdam)
                      .configure_optimizers(), torch.optim.SparseAdam)
    with pytest.raises(ValueError, match="SparseAdam needs sparse gradients"):
        ContrastiveTask(20, dim=4, optimizer=torch.optim.SparseAdam).configure_optimizers()


def test_the_cli_takes_only_tasks_as_models(tmp_path: Path) -> None:
    pairs = write_groups(tmp_path / "pairs.tsv")
    args = ["--model", "pytorch_lightning.demos.boring_classes.BoringModel",
            "--data", "nslightning.data.PairDataModule", "--data.path", str(pairs)]
    with pytest.raises(SystemExit):
        build_cli(args, run=False)
    cli = build_cli(["--model", "ContrastiveTask", "--data", "PairDataModule",
                     "--data.path", str(pairs), "--trainer.logger", "false"], run=False)
    assert isinstance(cli.model, ContrastiveTask)


def test_language_model_checkpoints_from_before_the_base_still_load() -> None:
    """The sampler moved from ``output.sampler`` to ``sampler``: old keys are renamed."""
    settings = dict(dim=8, hidden_size=8, num_layers=1, num_negatives=4, sampler=UniformSampler())
    trained = LanguageModelTask(30, **settings)
    trained.sampler.setup(torch.arange(1.0, 31.0))
    trained.sampler.manual_seed(7)
    state = trained.state_dict()
    old = {("output." + key if key.startswith("sampler.") else key): value
           for key, value in state.items()}
    assert any(key.startswith("output.sampler.") for key in old)
    fresh = LanguageModelTask(30, **{**settings, "sampler": UniformSampler()})
    checkpoint = {"state_dict": old}
    fresh.on_load_checkpoint(checkpoint)
    fresh.load_state_dict(checkpoint["state_dict"])
    assert fresh.sampler.vocab_size == 30
    targets = torch.tensor([1, 2, 3])
    torch.testing.assert_close(fresh.sampler.sample(targets, 4).ids,
                               trained.sampler.sample(targets, 4).ids)


def test_the_language_model_takes_a_loss_object_or_a_shorthand() -> None:
    by_name = LanguageModelTask(50, dim=8, hidden_size=8, num_layers=1, num_negatives=4,
                                output="nce")
    by_object = LanguageModelTask(50, dim=8, hidden_size=8, num_layers=1, num_negatives=4,
                                  loss=NCELoss())
    assert type(by_name.output.loss) is type(by_object.output.loss) is NCELoss
    assert by_name.output.accidental_hits == by_object.output.accidental_hits == "keep"
    default = LanguageModelTask(50, dim=8, hidden_size=8, num_layers=1, num_negatives=4)
    assert isinstance(default.output.loss, SampledSoftmaxLoss)
    assert default.output.accidental_hits == "positive"
    full = LanguageModelTask(50, dim=8, hidden_size=8, num_layers=1, output="full")
    assert full.output.loss is None and full.sampler is None


def test_the_tasks_shared_arguments_have_help_before_a_task_is_chosen(capsys) -> None:
    """``sampler`` and ``loss`` belong to the base, so their help needs no task first."""
    with pytest.raises(SystemExit) as stopped:
        build_cli(["fit", "--model.sampler.help", "UnigramSampler"])
    assert stopped.value.code == 0
    assert "--sampler.power" in capsys.readouterr().out
