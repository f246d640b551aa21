"""Every sampler trains skip-gram; the task hands samplers anchors, a scorer, exclusions."""

from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import CSVLogger
from torch import Tensor

from nslightning.data import SkipGramDataModule
from nslightning.models import WindowScorer
from nslightning.samplers import (
    HardNegativeSampler,
    InBatchSampler,
    IndexHardNegativeSampler,
    LogUniformSampler,
    MemoryBankSampler,
    MixedSampler,
    Negatives,
    NegativeSampler,
    UniformSampler,
    UnigramSampler,
)
from nslightning.samplers.base import DrawRequest
from nslightning.tasks import SkipGramTask
from nslightning.tasks.sampler_logging import log_sampler_diagnostics

SAMPLERS = {
    "log_uniform": lambda: LogUniformSampler(seed=1),
    "in_batch": lambda: InBatchSampler(seed=1),
    "memory_bank": lambda: MemoryBankSampler(size=256, seed=1),
    "mixed": lambda: MixedSampler([InBatchSampler(), UnigramSampler()], [0.4, 0.6], seed=1),
    "hard_pool": lambda: HardNegativeSampler(UniformSampler(), pool_size=12, skip_top=1, seed=1),
    "hard_index": lambda: IndexHardNegativeSampler(pool_size=8, refresh_every=5, seed=1),
    "unique_redraw": lambda: UnigramSampler(unique=True, redraw=True, seed=1),
}


def make(corpus: Path, sampler: NegativeSampler, **task_kwargs) -> tuple[
    SkipGramTask, SkipGramDataModule
]:
    data = SkipGramDataModule(str(corpus), min_count=1, batch_size=1000, window=3, sample=None,
                              seed=0)
    task = SkipGramTask(data.vocab_size, dim=16, sampler=sampler, update_size=64, **task_kwargs)
    return task, data


def trainer(tmp_path: Path | None = None, **kwargs) -> pl.Trainer:
    logger = CSVLogger(str(tmp_path), name="logs") if tmp_path is not None else False
    return pl.Trainer(max_epochs=1, logger=logger, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
                      **kwargs)


NEVER_HIT = {"hard_index", "hard_pool", "in_batch", "unique_redraw"}  # redrawn or set aside
ALL_DISTINCT = {"hard_index", "hard_pool", "unique_redraw"}  # no id twice in a row


def hit_rate_and_unique_fraction(centers: Tensor, negatives: Negatives) -> tuple[float, float]:
    """The two diagnostics of a draw, counted one row at a time (a hit is the center)."""
    hits = slots = distinct = valid = 0
    for center, ids, mask in zip(
        centers.tolist(), negatives.ids.tolist(), negatives.mask.tolist(), strict=True
    ):
        hits += sum(i == center for i in ids)
        slots += len(ids)
        kept = [i for i, keep in zip(ids, mask, strict=True) if keep]
        distinct += len(set(kept))
        valid += len(kept)
    return hits / slots, distinct / valid


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_every_sampler_trains_and_logs_diagnostics(
    topic_corpus_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    pl.seed_everything(0, verbose=False)
    task, data = make(topic_corpus_file, SAMPLERS[name](), diagnostics_every=3)
    draws: dict[int, tuple[Tensor, Negatives]] = {}  # update -> (centers, negatives)
    draw_negatives = task.draw_negatives

    def recording(centers: Tensor, contexts: Tensor, mask: Tensor) -> Negatives:
        draws[task.global_step] = (centers, draw_negatives(centers, contexts, mask))
        return draws[task.global_step][1]

    monkeypatch.setattr(task, "draw_negatives", recording)
    before = task.embeddings.output.weight.detach().clone()
    trainer(tmp_path).fit(task, data)
    assert not torch.equal(before, task.embeddings.output.weight)
    assert torch.isfinite(task.word_vectors()).all()
    metrics = next(tmp_path.glob("logs/version_*/metrics.csv"))
    with open(metrics, encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    logged = [row for row in rows if row.get("sampler/hit_rate")]
    updates = [int(float(row["sampler/update"])) for row in logged]
    assert len(draws) == task.global_step  # one draw per update
    assert updates == [update for update in sorted(draws) if update % 3 == 0]
    for update, row in zip(updates, logged, strict=True):
        # the diagnosed rows are the update's first update_size centers
        centers, negatives = draws[update]
        diagnosed = slice(0, task.update_size)
        first = Negatives(negatives.ids[diagnosed], None, negatives.mask[diagnosed])
        hit_rate, unique_fraction = hit_rate_and_unique_fraction(centers[diagnosed], first)
        assert float(row["sampler/hit_rate"]) == pytest.approx(hit_rate, abs=1e-6)
        assert float(row["sampler/unique_fraction"]) == pytest.approx(unique_fraction, abs=1e-6)
        if name in ALL_DISTINCT:
            assert unique_fraction == 1.0
        shares = [float(v) for k, v in row.items() if k.startswith("sampler/rank_share/") and v]
        assert shares and abs(sum(shares) - 1.0) < 1e-4
        assert {"sampler/pos_score", "sampler/neg_score", "sampler/score_gap"} <= set(row)
    # no hit from the samplers that avoid them; the others drew some (and masked them)
    rates = [float(row["sampler/hit_rate"]) for row in logged]
    assert (max(rates) > 0) == (name not in NEVER_HIT)


class RecordingLogger:
    """Keeps what ``log_metrics`` got."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, float], int | None]] = []

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.calls.append((dict(metrics), step))


def test_log_sampler_diagnostics_logs_the_statistics_of_a_known_draw() -> None:
    # Row 0 (positive 4): a hit on 4 twice, 2 kept, 9 an empty slot (masked, not a hit).
    # Row 1 (positive 1, excluded 6): a hit on 6 and on 1, 5 kept twice.
    draw = Negatives(
        ids=torch.tensor([[4, 2, 4, 9], [5, 6, 5, 1]]), log_q=None,
        mask=torch.tensor([[False, True, False, False], [True, False, True, False]]),
    )
    logger = RecordingLogger()
    loop = SimpleNamespace(epoch_loop=SimpleNamespace(_batches_that_stepped=3))
    module = SimpleNamespace(
        trainer=SimpleNamespace(is_global_zero=True, global_step=7, fit_loop=loop),
        loggers=[logger],
    )
    positives, exclude = torch.tensor([4, 1]), torch.tensor([[-1], [6]])
    values = log_sampler_diagnostics(
        module, draw, 10, positives=positives, exclude=exclude, update=11  # type: ignore[arg-type]
    )
    assert logger.calls == [(values, 3)]  # at the batches' step, not the updates'
    assert values == pytest.approx({
        "sampler/hit_rate": 4 / 8,  # the empty slot is masked but no hit
        "sampler/masked_rate": 5 / 8,
        "sampler/unique_fraction": 2 / 3,  # kept: {2} in row 0, {5, 5} in row 1
        "sampler/rank_share/0-10": 1.0,
        "sampler/update": 11.0,
    })


class Recording(UnigramSampler):
    """A unigram sampler that keeps what the task passed to it."""

    def __init__(self) -> None:
        super().__init__(seed=0)
        self.requests: list[DrawRequest] = []
        self.results: list[Negatives] = []

    def draw(self, request: DrawRequest) -> Negatives:
        result = super().draw(request)
        self.requests.append(request)
        self.results.append(result)
        return result


def test_task_passes_centers_as_anchors_and_a_window_scorer(topic_corpus_file: Path) -> None:
    sampler = Recording()
    task, data = make(topic_corpus_file, sampler, accidental_hits="known")
    trainer(max_steps=3).fit(task, data)
    request = sampler.requests[-1]
    assert request.anchors is not None and torch.equal(request.anchors, request.positives)
    assert isinstance(request.scorer, WindowScorer) and request.exclude is not None
    # The scorer scores a candidate as the loss does: against every context of the row.
    contexts, mask = request.scorer.contexts, request.scorer.mask
    rows = request.positives.shape[0]
    candidates = torch.arange(6).repeat(rows, 1)
    weights = task.embeddings
    inputs = weights.input.weight.detach()[contexts]  # (n, 2W, D)
    pair = torch.einsum("ncd,md->ncm", inputs, weights.output.weight.detach()[:6])
    expected = (pair * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp_min(1)
    torch.testing.assert_close(request.scorer(request.anchors, candidates), expected)
    # ...and mining over the vocabulary scores the items as contexts of the anchor ids.
    anchors, items = request.positives[:3], torch.arange(5)
    output, input_ = weights.output.weight.detach(), weights.input.weight.detach()
    torch.testing.assert_close(request.scorer.mine(anchors, items), input_[anchors] @ output[:5].T)
    with pytest.raises(ValueError, match="rows"):
        request.scorer(anchors, candidates[:3])
    # exclude is the window: real contexts, -1 elsewhere.
    assert torch.equal(request.exclude, contexts.masked_fill(~mask, -1))


def test_accidental_hits_known_masks_every_word_of_the_window(topic_corpus_file: Path) -> None:
    sampler = Recording()
    task, data = make(topic_corpus_file, sampler, accidental_hits="known", num_negatives=20)
    trainer(max_steps=4).fit(task, data)
    found_window_hit = False
    for request, result in zip(sampler.requests, sampler.results, strict=True):
        assert request.exclude is not None
        in_window = (result.ids.unsqueeze(-1) == request.exclude.unsqueeze(1)).any(-1)
        hit = in_window | (result.ids == request.positives.unsqueeze(-1))
        assert torch.equal(result.mask, ~hit)
        found_window_hit |= bool((in_window & (result.ids != request.positives[:, None])).any())
    assert found_window_hit  # with 32 words and K=20 some negatives fall in the window


def test_accidental_hits_positive_masks_only_the_center(topic_corpus_file: Path) -> None:
    sampler = Recording()
    task, data = make(topic_corpus_file, sampler)
    trainer(max_steps=2).fit(task, data)
    assert all(request.exclude is None for request in sampler.requests)


def test_hard_negatives_score_higher_than_their_base_inside_the_task(
    topic_corpus_file: Path,
) -> None:
    pl.seed_everything(0, verbose=False)
    sampler = Recording()
    task, data = make(topic_corpus_file, sampler, num_negatives=3)
    trainer().fit(task, data)  # a trained model, then compare samplers on its last update
    request = sampler.requests[-1]
    scorer, centers = request.scorer, request.positives
    assert isinstance(scorer, WindowScorer)
    counts = torch.as_tensor(data.counts, dtype=torch.float64)
    base = UnigramSampler(seed=3)
    hard = HardNegativeSampler(UnigramSampler(), pool_size=16, seed=3)
    base.setup(counts)
    hard.setup(counts)
    plain = base.sample(centers, 3, anchors=centers, scorer=scorer)
    mined = hard.sample(centers, 3, anchors=centers, scorer=scorer)
    plain_scores = scorer(centers, plain.ids)[plain.mask].mean()
    mined_scores = scorer(centers, mined.ids)[mined.mask].mean()
    assert mined_scores > plain_scores + 0.1


def test_diagnostics_can_be_turned_off(topic_corpus_file: Path, tmp_path: Path) -> None:
    task, data = make(topic_corpus_file, UnigramSampler(), diagnostics_every=0)
    trainer(tmp_path, log_every_n_steps=1).fit(task, data)
    metrics = next(tmp_path.glob("logs/version_*/metrics.csv"))
    header = metrics.read_text(encoding="utf-8").splitlines()[0]
    assert "sampler/" not in header and "train/loss" in header


def test_negative_diagnostics_every_is_refused() -> None:
    with pytest.raises(ValueError, match="diagnostics_every"):
        SkipGramTask(10, diagnostics_every=-1)


def test_memory_bank_state_is_saved_and_restored_with_the_task(
    topic_corpus_file: Path, tmp_path: Path
) -> None:
    task, data = make(topic_corpus_file, MemoryBankSampler(size=64, seed=0))
    fit_trainer = pl.Trainer(max_steps=5, logger=False, enable_progress_bar=False,
                             enable_model_summary=False, accelerator="cpu",
                             default_root_dir=str(tmp_path))
    fit_trainer.fit(task, data)
    path = tmp_path / "task.ckpt"
    fit_trainer.save_checkpoint(str(path))
    bank = task.sampler
    assert isinstance(bank, MemoryBankSampler) and int(bank.filled) > 0
    restored = SkipGramTask.load_from_checkpoint(
        str(path), sampler=MemoryBankSampler(size=64, seed=9)
    )
    assert isinstance(restored.sampler, MemoryBankSampler)
    assert torch.equal(restored.sampler.contents(), bank.contents())
    positives = torch.tensor([1, 2, 3])
    assert torch.equal(
        restored.sampler.sample(positives, 4).ids, bank.sample(positives, 4).ids
    )


def test_setup_outside_fit_keeps_the_sampler_state(topic_corpus_file: Path) -> None:
    task, data = make(topic_corpus_file, MemoryBankSampler(size=64, seed=0))
    trainer(max_steps=3).fit(task, data)
    bank = task.sampler
    assert isinstance(bank, MemoryBankSampler)
    before = bank.contents()
    assert before.numel() > 0
    task.setup("validate")  # e.g. trainer.validate after fit: the queue must survive
    assert torch.equal(bank.contents(), before)
    task.setup("fit")  # a new fit starts afresh
    assert bank.contents().numel() == 0
