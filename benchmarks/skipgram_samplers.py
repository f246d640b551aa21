"""Skip-gram with every shipped sampler config: word-vector quality and speed, one run each.

Unigram^0.75 (word2vec's choice) is the reference in the same run. One JSON line per sampler:

    python benchmarks/skipgram_samplers.py --epochs 3 --workers 2

Fields: sampler (config name), accidental_hits, words_per_s (in-vocabulary tokens x epochs per
second of training), wall_s, ws353, simlex (Spearman), analogy (accuracy).
"""

from __future__ import annotations

import argparse
import importlib
import json
import time
import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import yaml

from nslightning.callbacks import evaluate_keyed_vectors, to_keyed_vectors
from nslightning.data import SkipGramDataModule
from nslightning.samplers import NegativeSampler
from nslightning.tasks import SkipGramTask

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "samplers"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default="enwiki-sample")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--min-count", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--configs", nargs="*", help="config names (default: all)")
    parser.add_argument("--accidental-hits", choices=["positive", "known"], default="positive",
                        help="known: every word of the center's window is a hit")
    return parser.parse_args(argv)


def instantiate(config: Any) -> Any:
    """Builds ``{class_path, init_args}`` (nested too), as LightningCLI does."""
    if isinstance(config, list):
        return [instantiate(item) for item in config]
    if not isinstance(config, dict) or "class_path" not in config:
        return config
    module_name, _, class_name = config["class_path"].rpartition(".")
    cls = getattr(importlib.import_module(module_name), class_name)
    init_args = {key: instantiate(value) for key, value in config.get("init_args", {}).items()}
    return cls(**init_args)


def run(name: str, sampler: NegativeSampler, data: SkipGramDataModule,
        args: argparse.Namespace) -> dict[str, Any]:
    pl.seed_everything(args.seed, verbose=False)
    task = SkipGramTask(data.vocab_size, sampler=sampler, accidental_hits=args.accidental_hits,
                        diagnostics_every=0)
    trainer = pl.Trainer(
        max_epochs=args.epochs, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu", devices=1,
    )
    start = time.perf_counter()
    trainer.fit(task, data)
    wall = time.perf_counter() - start
    scores = evaluate_keyed_vectors(to_keyed_vectors(data.vocabulary.tokens, task.word_vectors()))
    words = int(data.counts.sum()) * args.epochs
    return {
        "sampler": name, "accidental_hits": args.accidental_hits,
        "words_per_s": round(words / wall), "wall_s": round(wall, 2),
        "ws353": round(scores["ws353"], 4), "simlex": round(scores["simlex"], 4),
        "analogy": round(scores["analogy"], 4), "epochs": args.epochs,
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.workers)
    data = SkipGramDataModule(corpus=args.corpus, min_count=args.min_count, seed=args.seed)
    paths = sorted(CONFIGS.glob("*.yaml"))
    names = ["unigram", *[p.stem for p in paths if p.stem != "unigram"]]
    for name in names:
        if args.configs and name not in args.configs:
            continue
        config = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text(encoding="utf-8"))
        print(json.dumps(run(name, instantiate(config), data, args)), flush=True)


if __name__ == "__main__":
    main()
