"""Skip-gram: nslightning against gensim's Word2Vec(sg=1), same corpus, settings and machine.

Each system trains in its own child process (so peak RSS is its own) and prints one JSON line:

    python benchmarks/skipgram_vs_gensim.py --corpus enwiki-sample --epochs 5 --workers 2

Fields: system, words_per_s (corpus tokens x epochs / training seconds, the same numerator for
both), wall_s (training only), ws353, simlex (Spearman), analogy (accuracy), vocab_size,
peak_rss_mb. ``--profile`` adds the top operators of one nslightning epoch on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import warnings
from typing import Any

MAX_GENSIM_SENTENCE = 10000  # gensim truncates longer sentences; split so it sees every token


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default="enwiki-sample")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--window", type=int, default=5)
    parser.add_argument("--negative", type=int, default=5)
    parser.add_argument("--sample", type=float, default=1e-3)
    parser.add_argument("--min-count", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--update-size", type=int, default=512, help="nslightning only")
    parser.add_argument(
        "--dense", action="store_true", help="nslightning with dense gradients and torch SGD"
    )
    parser.add_argument("--systems", default="gensim,nslightning")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--system", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_gensim(args: argparse.Namespace, sentences: list[list[str]]) -> dict[str, Any]:
    from gensim.models import Word2Vec

    pieces = [
        sentence[start : start + MAX_GENSIM_SENTENCE]
        for sentence in sentences
        for start in range(0, len(sentence), MAX_GENSIM_SENTENCE)
    ]
    model = Word2Vec(
        vector_size=args.dim, window=args.window, negative=args.negative, sg=1, hs=0,
        sample=args.sample, min_count=args.min_count, workers=args.workers, seed=args.seed,
    )
    model.build_vocab(pieces)
    start = time.perf_counter()
    model.train(pieces, total_examples=model.corpus_count, epochs=args.epochs)
    return {"wall_s": time.perf_counter() - start, "keyed": model.wv}


def run_nslightning(args: argparse.Namespace) -> dict[str, Any]:
    import pytorch_lightning as pl
    import torch

    from nslightning.callbacks import to_keyed_vectors
    from nslightning.data import SkipGramDataModule
    from nslightning.samplers import UnigramSampler
    from nslightning.tasks import SkipGramTask

    torch.set_num_threads(args.workers)
    pl.seed_everything(args.seed, verbose=False)
    data = SkipGramDataModule(
        corpus=args.corpus, min_count=args.min_count, window=args.window, sample=args.sample,
        seed=args.seed,
    )
    task = SkipGramTask(
        data.vocab_size, dim=args.dim, num_negatives=args.negative,
        sampler=UnigramSampler(0.75, seed=args.seed), update_size=args.update_size,
        **({"sparse": False, "optimizer": torch.optim.SGD} if args.dense else {}),
    )
    trainer = pl.Trainer(
        max_epochs=args.epochs, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu", devices=1,
    )
    start = time.perf_counter()
    trainer.fit(task, data)
    wall = time.perf_counter() - start
    keyed = to_keyed_vectors(data.vocabulary.tokens, task.word_vectors())
    if args.profile:  # after the vectors are taken: the profiled epoch does not count
        profile_epoch(data, task)
    return {"wall_s": wall, "keyed": keyed}


def profile_epoch(data: Any, task: Any) -> None:
    import pytorch_lightning as pl
    from torch.profiler import ProfilerActivity, profile

    trainer = pl.Trainer(
        max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, accelerator="cpu", devices=1,
    )
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        trainer.fit(task, data)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15), file=sys.stderr)


def child(args: argparse.Namespace) -> None:
    warnings.filterwarnings("ignore")
    from nslightning.callbacks import evaluate_keyed_vectors
    from nslightning.data import read_sentences

    sentences = list(read_sentences(args.corpus))
    corpus_words = sum(len(sentence) for sentence in sentences)
    if args.system == "gensim":
        result = run_gensim(args, sentences)
    else:
        del sentences
        result = run_nslightning(args)
    keyed = result.pop("keyed")
    scores = evaluate_keyed_vectors(keyed)
    record = {
        "system": args.system + ("-dense" if args.dense and args.system != "gensim" else ""),
        "words_per_s": round(corpus_words * args.epochs / result["wall_s"]),
        "wall_s": round(result["wall_s"], 2),
        "ws353": round(scores["ws353"], 4),
        "simlex": round(scores["simlex"], 4),
        "analogy": round(scores["analogy"], 4),
        "vocab_size": len(keyed),
        "corpus_words": corpus_words,
        "epochs": args.epochs,
        "workers": args.workers,
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    print(json.dumps(record), flush=True)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.system:
        child(args)
        return
    passthrough = sys.argv[1:] if argv is None else argv
    for system in args.systems.split(","):
        env = dict(os.environ, OMP_NUM_THREADS=str(args.workers))
        subprocess.run(
            [sys.executable, __file__, *passthrough, "--system", system], check=True, env=env
        )


if __name__ == "__main__":
    main()
