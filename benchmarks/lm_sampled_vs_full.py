"""Sampled output layers against the full softmax for an LSTM language model, in one run.

Trains the same model (same seed, data, optimiser and epochs) once per objective and prints one
JSON line per objective: full-softmax ``test_ppl`` (and ``val_ppl``), training tokens per second
of training steps (data loading and evaluation excluded), the vocabulary size and the wall time.
Every line also carries the test perplexity of the smoothed unigram model and, once ``full`` has
run, the ratios to it.

    python benchmarks/lm_sampled_vs_full.py --corpus enwiki-sample --epochs 2 --min-count 1 \
        --objectives full,sampled_softmax,negative_sampling,nce --num-negatives 1024
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from nslightning.data import LanguageModelDataModule
from nslightning.data.token_streams import TokenWindow
from nslightning.samplers import LogUniformSampler, UniformSampler, UnigramSampler
from nslightning.samplers.base import NegativeSampler
from nslightning.samplers.table import TableSampler
from nslightning.tasks import LanguageModelTask

SAMPLERS = {
    "log_uniform": lambda seed: LogUniformSampler(seed=seed),
    "unigram": lambda seed: UnigramSampler(power=0.75, seed=seed),
    "uniform": lambda seed: UniformSampler(seed=seed),
}


class StepClock(pl.Callback):
    """Seconds spent in training steps (forward, backward, optimiser) and tokens trained."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.tokens = 0
        self._start = 0.0

    def _sync(self, module: pl.LightningModule) -> None:
        if module.device.type == "cuda":
            torch.cuda.synchronize(module.device)

    def on_train_batch_start(
        self, trainer: pl.Trainer, module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._sync(module)
        self._start = time.perf_counter()

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        self._sync(module)
        self.seconds += time.perf_counter() - self._start
        assert isinstance(batch, TokenWindow)
        self.tokens += batch.num_tokens


def device_name(accelerator: str) -> str:
    """The GPU's name when one is used, else the CPU's model name."""
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name()
    try:
        lines = Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines()
    except OSError:
        lines = []
    for line in lines:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def unigram_test_ppl(data: LanguageModelDataModule) -> float:
    """Perplexity of the add-one-smoothed training unigram model on the test split."""
    counts = data.counts.double() + 1.0
    log_p = (counts / counts.sum()).log()
    return math.exp(-float(log_p[torch.from_numpy(data.ids("test").astype("int64"))].mean()))


def test_ppl_plus_log_kq(
    task: LanguageModelTask, trainer: pl.Trainer, data: LanguageModelDataModule
) -> float:
    """Test perplexity of negative-sampling scores shifted by ``log(K q_w)``.

    Negative sampling's optimum is ``s_w = log p(w | c) - log(K q_w)`` (Levy & Goldberg 2014),
    so adding ``log(K q_w)`` to every score recovers ``log p(w | c)`` up to normalisation: the
    shift NCE's logits build in.
    """
    sampler = task.sampler
    assert isinstance(sampler, TableSampler)
    shift = sampler.probabilities().log() + math.log(task.output.num_negatives)
    with torch.no_grad():
        task.model.output_bias += shift.to(task.model.output_bias)
    try:
        return float(trainer.test(task, datamodule=data, verbose=False)[0]["test/ppl"])
    finally:
        with torch.no_grad():
            task.model.output_bias -= shift.to(task.model.output_bias)


def test_ppl_without_unk(
    task: LanguageModelTask, data: LanguageModelDataModule, limit: float
) -> float:
    """Full-softmax test perplexity over the targets that are not ``<unk>``.

    With ``min_count=1`` no training token is ``<unk>``, so the model learns to give it almost
    no probability and the test's unseen words dominate ``test_ppl``; this figure leaves them
    out (the softmax still spans all ``V`` tokens). ``limit`` is Lightning's
    ``limit_test_batches`` (a fraction, or a number of windows when above 1).
    """
    loader = data.test_dataloader()
    windows = int(limit) if limit > 1 else int(len(loader) * limit)
    task.eval()
    total, count, hidden = 0.0, 0, None
    with torch.no_grad():
        for _, window in zip(range(windows), loader, strict=False):
            inputs, targets = window.inputs.to(task.device), window.targets.to(task.device)
            features, hidden = task.model(inputs, hidden)
            nll = task.model.nll(features.reshape(-1, features.shape[-1]), targets.reshape(-1))
            known = targets.reshape(-1) != data.unk_id
            total += float(nll[known].sum())
            count += int(known.sum())
    return math.exp(total / max(count, 1))


def run_objective(args: argparse.Namespace, data: LanguageModelDataModule, objective: str) -> dict:
    pl.seed_everything(args.seed, verbose=False)
    sampler: NegativeSampler = SAMPLERS[args.sampler](args.seed)
    task = LanguageModelTask(
        vocab_size=data.vocab_size,
        dim=args.embedding_dim,
        hidden_size=args.hidden_size,
        num_layers=args.num_layers,
        dropout=args.dropout,
        output=objective,  # type: ignore[arg-type]
        num_negatives=args.num_negatives,
        sampler=sampler,
        shared_negatives=not args.per_token,
        lr=args.lr,
    )
    clock = StepClock()
    trainer = pl.Trainer(
        max_epochs=args.epochs,
        accelerator=args.accelerator,
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        gradient_clip_val=1.0,
        limit_train_batches=args.limit_train_batches,
        limit_val_batches=args.limit_eval_batches,
        limit_test_batches=args.limit_eval_batches,
        callbacks=[clock],
    )
    start = time.perf_counter()
    trainer.fit(task, datamodule=data)
    val_ppl = float(trainer.callback_metrics["val/ppl"])
    test_ppl = float(trainer.test(task, datamodule=data, verbose=False)[0]["test/ppl"])
    without_unk = test_ppl_without_unk(task, data, args.limit_eval_batches)
    extra: dict[str, float] = {"test_ppl_without_unk": round(without_unk, 2)}
    if objective == "negative_sampling":
        extra["test_ppl_plus_log_kq"] = round(test_ppl_plus_log_kq(task, trainer, data), 2)
    return {
        "objective": objective,
        "test_ppl": round(test_ppl, 2),
        "val_ppl": round(val_ppl, 2),
        "train_tokens_per_s": round(clock.tokens / clock.seconds, 1),
        "vocab_size": data.vocab_size,
        "wall_s": round(time.perf_counter() - start, 1),
        "train_tokens": clock.tokens,
        "train_step_s": round(clock.seconds, 1),
        **extra,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default="enwiki-sample", help="a path or a built-in name")
    parser.add_argument("--val-corpus", default=None, help="with --test-corpus: own splits")
    parser.add_argument("--test-corpus", default=None)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--min-count", type=int, default=1)
    parser.add_argument(
        "--objectives", default="full,sampled_softmax,negative_sampling,nce",
        help="comma-separated: full, sampled_softmax, negative_sampling, nce",
    )
    parser.add_argument("--num-negatives", type=int, default=1024)
    parser.add_argument("--sampler", choices=sorted(SAMPLERS), default="log_uniform")
    parser.add_argument("--per-token", action="store_true", help="candidates per token")
    parser.add_argument("--embedding-dim", type=int, default=256)
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--num-layers", type=int, default=1)
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--bptt", type=int, default=35)
    parser.add_argument(
        "--limit-train-batches", type=float, default=1.0,
        help="Lightning's limit: a fraction of an epoch (<= 1.0) or a number of batches",
    )
    parser.add_argument("--limit-eval-batches", type=float, default=1.0)
    parser.add_argument("--accelerator", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for name in ("limit_train_batches", "limit_eval_batches"):
        value = getattr(args, name)
        if value > 1:
            setattr(args, name, int(value))
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    objectives = [name.strip() for name in args.objectives.split(",") if name.strip()]

    data = LanguageModelDataModule(
        corpus=args.corpus,
        val_corpus=args.val_corpus,
        test_corpus=args.test_corpus,
        min_count=args.min_count,
        batch_size=args.batch_size,
        bptt=args.bptt,
    )
    setting = {
        "corpus": args.corpus,
        "train_split_tokens": int(data.ids("train").size),
        "epochs": args.epochs,
        "num_negatives": args.num_negatives,
        "sampler": args.sampler,
        "shared_negatives": not args.per_token,
        "dims": [args.embedding_dim, args.hidden_size, args.num_layers],
        "unigram_test_ppl": round(unigram_test_ppl(data), 2),
        "device": device_name(args.accelerator),
        "threads": torch.get_num_threads(),
    }
    full: dict | None = None
    for objective in objectives:
        result = run_objective(args, data, objective)
        if objective == "full":
            full = result
        elif full is not None:
            result["ppl_vs_full"] = round(result["test_ppl"] / full["test_ppl"], 3)
            result["speedup_vs_full"] = round(
                result["train_tokens_per_s"] / full["train_tokens_per_s"], 2
            )
        print(json.dumps({**result, **setting}), flush=True)


if __name__ == "__main__":
    main()
