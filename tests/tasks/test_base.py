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
from nslightning.data import LanguageModelDataModule, PairDataModule, SkipGramDataModule
from nslightning.data.contract import missing_members
from nslightning.losses import (
    InfoNCELoss,
    LinearWarmup,
    NCELoss,
    NegativeSamplingLoss,
    SampledSoftmaxLoss,
    WeightedContrastiveLoss,
)
from nslightning.models import LSTMLanguageModel, SampledOutput
from nslightning.samplers import (
    HardNegativeSampler,
    InBatchSampler,
    LogUniformSampler,
    UniformSampler,
    UnigramSampler,
)
from nslightning.tasks import ContrastiveTask, LanguageModelTask, SkipGramTask
from tests.corpora import write_groups

ROOT = Path(__file__).resolve().parents[2]


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


class ScheduledLoss(WeightedContrastiveLoss):
    """The λ-weighted loss with λ warming up over 4 steps, recording the λ of every call."""

    def __init__(self) -> None:
        super().__init__(lam=LinearWarmup(end=1.0, steps=4))
        self.seen: list[float] = []

    def forward(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.seen.append(self.lam)
        return super().forward(*args, **kwargs)


def test_a_scheduled_loss_follows_the_steps_in_every_task(tmp_path: Path) -> None:
    """Skip-gram (autograd: one step per update) and the language model advance the loss's
    schedule as the contrastive task does, and log it as train/lam."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(["the cat sat on the mat", "a dog ran to the log"] * 60))
    skipgram_data = SkipGramDataModule(str(corpus), min_count=1, window=2, sample=None,
                                       batch_size=200)
    skipgram = SkipGramTask(skipgram_data.vocab_size, dim=4, num_negatives=2, loss=ScheduledLoss(),
                            update_size=64, diagnostics_every=0)
    trainer = fit(skipgram, skipgram_data, steps=6)
    assert skipgram.engine_in_use == "autograd"
    seen = skipgram.loss.seen  # one update per step; a batch may end past max_steps
    assert len(seen) >= 6 and seen == [min(update / 4, 1.0) for update in range(len(seen))]
    assert float(trainer.callback_metrics["train/lam"]) == 1.0
    lm_data = LanguageModelDataModule(str(corpus), min_count=1, batch_size=2, bptt=4)
    lm_data.setup("fit")
    lm = LanguageModelTask(lm_data.vocab_size, dim=4, hidden_size=4, num_layers=1,
                           num_negatives=3, loss=ScheduledLoss(), shared_negatives=True)
    trainer = fit(lm, lm_data, steps=3)
    assert lm.output.loss.seen == [0.0, 0.25, 0.5]
    assert float(trainer.callback_metrics["train/lam"]) == 0.5


def test_full_softmax_checkpoints_from_before_the_base_still_load() -> None:
    """Before 0.2 a full-softmax model still held an (unused) log-uniform sampler."""
    model = LanguageModelTask(30, dim=8, hidden_size=8, num_layers=1, output="full")
    unused = LogUniformSampler()
    unused.setup(torch.arange(30.0, 0.0, -1.0))
    old = {**model.state_dict(),
           **{f"output.sampler.{key}": value for key, value in unused.state_dict().items()}}
    fresh = LanguageModelTask(30, dim=8, hidden_size=8, num_layers=1, output="full")
    checkpoint = {"state_dict": old}
    fresh.on_load_checkpoint(checkpoint)
    fresh.load_state_dict(checkpoint["state_dict"])  # strict: nothing left over
    torch.testing.assert_close(fresh.model.output_bias, model.model.output_bias)


def test_the_output_layer_used_alone_checks_its_sampler_and_old_calls() -> None:
    model = LSTMLanguageModel(20, dim=4, hidden_size=4, num_layers=1)
    features, targets = torch.randn(6, 4), torch.randint(0, 20, (6,))
    in_batch = InBatchSampler()
    in_batch.setup(torch.ones(20))
    with pytest.raises(ValueError, match="shared_negatives false"):  # no silent zero loss
        SampledOutput("sampled_softmax", 3)(model, features, targets, in_batch)
    with pytest.raises(TypeError, match=r"pass it to the call, output\(model, features"):
        SampledOutput("sampled_softmax", 3, UniformSampler())  # type: ignore[arg-type]


def test_a_datamodule_may_set_the_contract_on_itself() -> None:
    class OwnAttributes(pl.LightningDataModule):
        def __init__(self) -> None:
            super().__init__()
            self.vocab_size, self.counts = 10, torch.ones(10)

        def vocabularies(self) -> dict:
            return {}

    assert missing_members(OwnAttributes()) == []
    assert missing_members(CountsOnly()) == ["vocab_size", "vocabularies"]


def test_a_loss_of_the_old_contract_is_refused_where_it_is_written() -> None:
    with pytest.raises(TypeError, match=r"forward must take .*pos_log_q"):
        class Old(NegativeSamplingLoss):  # the 0.1 ContrastiveLoss signature
            def forward(self, pos_scores, neg_scores, neg_mask=None, log_q=None, weights=None):
                return pos_scores.sum()


def test_the_language_model_config_takes_a_loss_object_from_the_command_line(
    tmp_path: Path,
) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(["the cat sat on the mat", "a dog ran to the log"] * 60))
    cli = build_cli(["-c", str(ROOT / "configs" / "lm.yaml"), "--model.loss", "NCELoss",
                     "--model.num_negatives", "4", "--data.corpus", str(corpus),
                     "--trainer.logger", "false"], run=False)
    assert isinstance(cli.model.output.loss, NCELoss)
    assert cli.model.output.accidental_hits == "keep"
