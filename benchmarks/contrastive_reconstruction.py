"""Hierarchy (or any relation) reconstruction with the contrastive task, one sampler per run.

Trains :class:`~nslightning.tasks.ContrastiveTask` on every pair of ``--pairs`` and ranks the
same pairs afterwards (reconstruction, as in Nickel & Kiela 2017): for each pair ``(u, v)`` the
rank of ``v`` among the items that are not known positives of ``u`` (``mean_rank``, ``mrr``,
``hits@10``), and the mean over anchors of the average precision of their positives (``map``).
In one id space (``--shared``, the default) both sides share one table and the anchor itself
is not a candidate. Prints one JSON line.

Scores: ``dot``, ``cosine``, ``euclidean`` and the hyperbolic ``poincare`` and ``lorentz``
(trained by geoopt's Riemannian Adam or SGD, ``--optimizer``, with ``--burn-in`` epochs at a
tenth of the learning rate). ``--calibrate`` gives the loss ``(s + b) / t`` with a learned
``b``; by default the task does it for distance scores with the weighted loss.
``--encoder bag`` encodes every node as a bag of features (its own id and the words of its
name, ``sperm_whale.n.01`` -> ``sperm_whale.n.01 sperm whale``) instead of a table row.

    python benchmarks/wordnet_closure.py --wordnet DIR --root mammal.n.01 --out mammals.tsv
    python benchmarks/contrastive_reconstruction.py --pairs mammals.tsv --dim 10 --epochs 50 \
        --sampler uniform --num-negatives 10 --score euclidean --loss info_nce
    python benchmarks/contrastive_reconstruction.py --pairs mammals.tsv --dim 5 --epochs 200 \
        --score poincare --loss info_nce --burn-in 20 --lr 0.3 --optimizer sgd
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from nslightning.data import PairDataModule
from nslightning.losses import InfoNCELoss, NegativeSamplingLoss, WeightedContrastiveLoss
from nslightning.models.encoders import BagOfFeatures
from nslightning.models.scores import DISTANCE_SCORES, HYPERBOLIC_SCORES
from nslightning.samplers import (
    HardNegativeSampler,
    InBatchSampler,
    MixedSampler,
    NegativeSampler,
    UniformSampler,
    UnigramSampler,
)
from nslightning.tasks import ContrastiveTask


def make_sampler(name: str, num_negatives: int, seed: int) -> NegativeSampler:
    """The sampler behind each ``--sampler`` name."""
    if name == "uniform":
        return UniformSampler(seed=seed)
    if name == "unigram":
        return UnigramSampler(power=0.75, seed=seed)
    if name == "in_batch":
        return InBatchSampler(seed=seed)
    if name == "hard":
        # A uniform pool of 4K scored by the model; K drawn from softmax(score) over the pool.
        return HardNegativeSampler(
            base=UniformSampler(), pool_size=4 * num_negatives, selection="softmax", seed=seed
        )
    if name == "mixed":
        return MixedSampler([InBatchSampler(), UniformSampler()], shares=[0.5, 0.5], seed=seed)
    raise ValueError(f"unknown sampler {name!r}")


def make_loss(name: str, lam: float, temperature: float) -> NegativeSamplingLoss:
    if name == "weighted":
        return WeightedContrastiveLoss(lam=lam)
    return InfoNCELoss(temperature=temperature)


def name_features(names: list[str], folder: Path) -> Path:
    """A side file ``name<TAB>name word word ...``: each node's own id and the words of its
    lemma (``sperm_whale.n.01`` -> ``sperm_whale.n.01 sperm whale``)."""
    path = folder / "features.tsv"
    lines = []
    for name in names:
        words = name.split(".")[0].split("_")
        lines.append(f"{name}\t{' '.join([name, *(w for w in words if w)])}\n")
    path.write_text("".join(lines), encoding="utf-8")
    return path


def make_optimizer(name: str, score: str) -> Any:
    """Adam or SGD, their Riemannian versions (geoopt) for a hyperbolic score."""
    if score in HYPERBOLIC_SCORES:
        import geoopt

        return geoopt.optim.RiemannianAdam if name == "adam" else geoopt.optim.RiemannianSGD
    return torch.optim.Adam if name == "adam" else torch.optim.SGD


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", required=True, help="TSV/CSV file or built-in relation")
    parser.add_argument("--dim", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument(
        "--sampler", default="uniform", choices=["uniform", "unigram", "in_batch", "hard", "mixed"]
    )
    parser.add_argument(
        "--max-minutes", type=float, default=None,
        help="stop training after this many minutes (then evaluate), whatever --epochs says",
    )
    parser.add_argument("--num-negatives", type=int, default=10)
    parser.add_argument("--lam", type=float, default=1.0, help="λ of the weighted loss")
    parser.add_argument("--loss", default="weighted", choices=["weighted", "info_nce"])
    parser.add_argument("--temperature", type=float, default=1.0, help="InfoNCE's τ")
    parser.add_argument(
        "--score", default="euclidean",
        choices=["dot", "cosine", "euclidean", "poincare", "lorentz"],
    )
    parser.add_argument(
        "--calibrate", action=argparse.BooleanOptionalAction, default=None,
        help="calibrated scores (s + b) / t for the loss (default: the task's choice)",
    )
    parser.add_argument("--burn-in", type=int, default=0, help="epochs at lr / 10 first")
    parser.add_argument("--encoder", default="table", choices=["table", "bag"])
    parser.add_argument("--optimizer", default="adam", choices=["adam", "sgd"])
    parser.add_argument("--lr", type=float, default=0.01, help="the optimizer's learning rate")
    parser.add_argument("--accelerator", default="cpu", help="Lightning's accelerator")
    parser.add_argument(
        "--precision", default="32-true", choices=["32-true", "64-true"],
        help="Lightning's precision (64-true: float64 parameters, as the reference code of "
        "Nickel & Kiela trains hyperbolic embeddings)",
    )
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--separate", action="store_true", help="two id spaces, two tables")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", ".*(does not have many workers|self-pair).*")
    pl.seed_everything(args.seed, verbose=False)
    shared = not args.separate
    data = PairDataModule(
        args.pairs, shared_vocabulary=shared, batch_size=args.batch_size, seed=args.seed
    )
    data.setup("fit")
    encoder = None
    scratch = tempfile.TemporaryDirectory()
    if args.encoder == "bag":
        if not shared:
            parser.error("--encoder bag encodes one id space: drop --separate")
        names = data.anchor_vocabulary.tokens
        encoder = BagOfFeatures(str(name_features(names, Path(scratch.name))))
    task = ContrastiveTask(
        data.vocab_size,
        data.num_anchors,
        dim=args.dim,
        shared_embeddings=shared,
        score=args.score,
        num_negatives=args.num_negatives,
        sampler=make_sampler(args.sampler, args.num_negatives, args.seed),
        loss=make_loss(args.loss, args.lam, args.temperature),
        optimizer=make_optimizer(args.optimizer, args.score),
        lr=args.lr,
        init_scale=1e-3 if args.score in DISTANCE_SCORES else 0.1,
        diagnostics_every=0,
        anchor_encoder=encoder,
        calibrate=args.calibrate,
        burn_in_epochs=args.burn_in,
    )
    options = {
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "accelerator": args.accelerator,
        "precision": args.precision,
    }
    start = time.perf_counter()
    limit = None if args.max_minutes is None else timedelta(minutes=args.max_minutes)
    fit = pl.Trainer(max_epochs=args.epochs, max_time=limit, limit_val_batches=0, **options)
    fit.fit(task, data)
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    metrics = pl.Trainer(**options).validate(task, datamodule=data, verbose=False)[0]
    eval_s = time.perf_counter() - start
    result = {
        "pairs": args.pairs,
        "sampler": args.sampler,
        "loss": args.loss,
        "lam": args.lam if args.loss == "weighted" else None,
        "score": args.score,
        "calibrated": task.calibration is not None,
        "encoder": args.encoder,
        "optimizer": args.optimizer,
        "lr": args.lr,
        "burn_in": args.burn_in,
        "precision": args.precision,
        "accelerator": args.accelerator,
        "dim": args.dim,
        "epochs": args.epochs,
        "epochs_done": fit.current_epoch,
        "num_negatives": args.num_negatives,
        **data.describe(),
        "mean_rank": round(metrics["val/mean_rank"], 2),
        "map": round(metrics["val/map"], 4),
        "mrr": round(metrics["val/mrr"], 4),
        "hits@10": round(metrics["val/hits@10"], 4),
        "train_s": round(train_s, 1),
        "eval_s": round(eval_s, 1),
        "wall_s": round(train_s + eval_s, 1),
        "threads": torch.get_num_threads(),
    }
    if task.calibration is not None:
        result.update({k: round(v.item(), 4) for k, v in task.calibration.logged_values().items()})
    scratch.cleanup()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
