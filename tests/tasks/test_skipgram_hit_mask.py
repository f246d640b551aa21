"""Skip-gram's accidental hits, through the task's own training step: a sampler that is made to
draw the center (and, for ``exclude_window``, words of the window) among its negatives. The loss
and the update must equal a reference that skips exactly those draws, under both engines."""

from __future__ import annotations

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from nslightning.data.windows import SkipGramBatch
from nslightning.losses import SGNSLoss
from nslightning.samplers.base import Draw, DrawRequest, NegativeSampler
from nslightning.tasks import SkipGramTask
from tests.kernels.reference import reference_sgns_chunk

VOCAB, DIM, LR = 12, 6, 0.2
CENTERS = torch.tensor([0, 1, 2, 3, 4, 5])  # distinct: the script is looked up by center
CONTEXTS = torch.tensor([[6, 7, 8, 9], [2, 9, 10, 11], [3, 4, 0, 6], [11, 10, 8, 7],
                         [7, 1, 6, 2], [9, 8, 1, 3]])
MASK = torch.tensor([[1, 1, 1, 1], [0, 1, 1, 0], [1, 1, 1, 1], [0, 0, 1, 1],
                     [1, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.bool)
# Per center: the center itself (a hit), words of its window (hits only with exclude_window),
# a word only in a masked context slot (never a hit) and other words.
SCRIPT = {
    0: [0, 7, 11, 0, 5],   # center twice, window word 7
    1: [1, 9, 2, 6, 3],    # 9 is in the window; 2 only in a masked slot
    2: [4, 2, 5, 10, 0],   # window words 4 and 0
    3: [10, 11, 3, 8, 5],  # 11 only in a masked slot; window 8
    4: [2, 4, 7, 9, 11],   # 2 only in a masked slot; window 7
    5: [0, 5, 3, 4, 10],   # window 3
}


class ScriptedSampler(NegativeSampler):
    """Returns the negatives of :data:`SCRIPT` for each center, whatever the row order; the
    base class's :meth:`~nslightning.samplers.base.NegativeSampler.draw` marks the hits."""

    def _setup(self, counts: torch.Tensor) -> None:
        pass

    def _draw(self, request: DrawRequest) -> Draw:
        ids = torch.tensor([SCRIPT[int(center)] for center in request.positives])
        return Draw(ids, torch.full(ids.shape, -float(np.log(VOCAB))))


def kept(exclude_window: bool) -> torch.Tensor:
    """``(6, 5)`` the draws that are negatives, decided here from the definitions."""
    keep = torch.ones(6, 5, dtype=torch.bool)
    for row, center in enumerate(CENTERS.tolist()):
        window = set(CONTEXTS[row][MASK[row]].tolist())
        for column, drawn in enumerate(SCRIPT[center]):
            keep[row, column] = drawn != center and not (exclude_window and drawn in window)
    return keep


def train_one_step(engine: str, exclude_window: bool, lam: float) -> tuple[SkipGramTask, dict]:
    torch.manual_seed(0)
    task = SkipGramTask(VOCAB, dim=DIM, num_negatives=5, sampler=ScriptedSampler(), lr=LR,
                        min_lr=LR, engine=engine, threads=1,
                        accidental_hits="known" if exclude_window else "positive",
                        loss=SGNSLoss(lam=lam, reduction="sum"), diagnostics_every=0)
    task.sampler.setup(torch.ones(VOCAB))
    with torch.no_grad():
        task.embeddings.output.weight.normal_(0, 0.5)  # word2vec starts it at 0: no gradient
    start = {name: p.detach().clone().double() for name, p in task.embeddings.named_parameters()}
    batch = SkipGramBatch(CENTERS, CONTEXTS, MASK, num_tokens=6)
    trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         accelerator="cpu", log_every_n_steps=1)
    trainer.fit(task, DataLoader([batch], batch_size=None))
    assert trainer.global_step == 1
    return task, {"start": start, "loss": float(trainer.callback_metrics["train/loss"])}


@pytest.mark.parametrize("exclude_window", [False, True], ids=["center", "exclude_window"])
@pytest.mark.parametrize("lam", [1.0, 0.5])
def test_autograd_update_skips_the_hits(exclude_window: bool, lam: float) -> None:
    task, run = train_one_step("autograd", exclude_window, lam)
    w_in = run["start"]["input.weight"].requires_grad_(True)
    w_out = run["start"]["output.weight"].requires_grad_(True)
    keep = kept(exclude_window)
    assert (~keep).sum() >= (10 if exclude_window else 3)  # the script makes hits
    negatives = torch.tensor([SCRIPT[c] for c in CENTERS.tolist()])
    total, pairs = torch.zeros((), dtype=torch.float64), 0
    for row, center in enumerate(CENTERS.tolist()):
        for context in CONTEXTS[row][MASK[row]].tolist():
            total = total - F.logsigmoid(w_in[context] @ w_out[center])
            for column in range(5):
                if keep[row, column]:
                    score = w_in[context] @ w_out[negatives[row, column]]
                    total = total - lam * F.logsigmoid(-score)
            pairs += 1
    total.backward()
    assert run["loss"] == pytest.approx(total.item() / pairs, rel=1e-5)
    expected = {"input.weight": w_in - LR * w_in.grad, "output.weight": w_out - LR * w_out.grad}
    for name, param in task.embeddings.named_parameters():
        torch.testing.assert_close(param.double(), expected[name].detach(), atol=1e-6, rtol=0)


@pytest.mark.parametrize("exclude_window", [False, True], ids=["center", "exclude_window"])
def test_fused_update_skips_the_hits(exclude_window: bool) -> None:
    task, run = train_one_step("fused", exclude_window, lam=0.7)
    syn0, syn1 = run["start"]["input.weight"].numpy(), run["start"]["output.weight"].numpy()
    negatives = np.array([SCRIPT[c] for c in CENTERS.tolist()])
    loss, pairs = reference_sgns_chunk(
        syn0, syn1, CENTERS.numpy(), CONTEXTS.numpy(), MASK.numpy(), negatives,
        kept(exclude_window).numpy(), LR, LR, lam=0.7,
    )
    assert run["loss"] == pytest.approx(loss / pairs, rel=1e-5)
    torch.testing.assert_close(task.embeddings.input.weight.double(), torch.from_numpy(syn0),
                               atol=1e-5, rtol=0)
    torch.testing.assert_close(task.embeddings.output.weight.double(), torch.from_numpy(syn1),
                               atol=1e-5, rtol=0)
