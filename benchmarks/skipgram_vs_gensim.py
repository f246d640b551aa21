"""Skip-gram: nslightning against gensim's Word2Vec(sg=1), same corpus, settings and machine.

Each system trains in its own child process (so peak RSS is its own) and prints one JSON line;
``--workers 1,2`` runs gensim with 1 and 2 workers and nslightning with 1 and 2 threads, in
turn, in one run (``--repeats`` interleaves more rounds):

    python benchmarks/skipgram_vs_gensim.py --corpus enwiki-sample --epochs 5 --workers 1,2 \
        --engine fused

Fields: system, engine, workers (gensim's workers, nslightning's threads), words_per_s (corpus
tokens x epochs / training seconds, the same numerator for both), wall_s (gensim: ``train()``;
nslightning: ``Trainer.fit``, set-up and the numba kernel's load from its disk cache included),
ws353, simlex (Spearman), analogy (accuracy), vocab_size, peak_rss_mb. ``--profile`` adds the
top operators of one nslightning epoch on stderr.
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
    parser.add_argument(
        "--workers", default="2", help="comma-separated: gensim workers = nslightning threads"
    )
    parser.add_argument("--engine", choices=["fused", "autograd"], default="fused")
    parser.add_argument("--repeats", type=int, default=1, help="rounds of every run, in turn")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--update-size", type=int, default=512, help="autograd engine only")
    parser.add_argument("--batch-size", type=int, default=16384, help="nslightning chunk")
    parser.add_argument(
        "--dense", action="store_true", help="nslightning with dense gradients and torch SGD"
    )
    parser.add_argument("--accelerator", default="cpu", help="nslightning: cpu or gpu")
    parser.add_argument(
        "--rows-per-program", type=int, default=None,
        help="fused engine on a GPU: rows of a chunk per Triton program (the kernel's default)",
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
        sample=args.sample, min_count=args.min_count, workers=int(args.workers), seed=args.seed,
    )
    model.build_vocab(pieces)
    start = time.perf_counter()
    model.train(pieces, total_examples=model.corpus_count, epochs=args.epochs)
    return {"wall_s": time.perf_counter() - start, "keyed": model.wv}


class SteadyClock:
    """A Lightning callback: seconds and corpus tokens from the end of the first step to the end
    of training (start-up and the kernels' compilation left out)."""

    def __init__(self) -> None:
        import pytorch_lightning as pl

        clock = self

        class Callback(pl.Callback):
            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):  # type: ignore[no-untyped-def]
                clock.tick(batch.num_tokens)

        self.callback = Callback()
        self.start: float | None = None
        self.end = 0.0
        self.tokens = 0

    def tick(self, tokens: int) -> None:
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()
        now = time.perf_counter()
        if self.start is None:
            self.start = now
        else:
            self.tokens += tokens
        self.end = now

    def words_per_s(self) -> float | None:
        if self.start is None or self.end <= self.start:
            return None
        return self.tokens / (self.end - self.start)


def run_nslightning(args: argparse.Namespace) -> dict[str, Any]:
    import pytorch_lightning as pl
    import torch

    if args.rows_per_program is not None:
        import nslightning.kernels.sgns_triton as triton_kernel

        triton_kernel.ROWS_PER_PROGRAM = args.rows_per_program

    from nslightning.callbacks import to_keyed_vectors
    from nslightning.data import SkipGramDataModule
    from nslightning.samplers import UnigramSampler
    from nslightning.tasks import SkipGramTask

    torch.set_num_threads(int(args.workers))
    pl.seed_everything(args.seed, verbose=False)
    data = SkipGramDataModule(
        corpus=args.corpus, min_count=args.min_count, window=args.window, sample=args.sample,
        seed=args.seed, batch_size=args.batch_size,
    )
    task = SkipGramTask(
        data.vocab_size, dim=args.dim, num_negatives=args.negative,
        sampler=UnigramSampler(0.75, seed=args.seed), update_size=args.update_size,
        engine=args.engine,
        **({"sparse": False, "optimizer": torch.optim.SGD} if args.dense else {}),
    )
    clock = SteadyClock()
    trainer = pl.Trainer(
        max_epochs=args.epochs, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, accelerator=args.accelerator,
        devices=1, callbacks=[clock.callback],
    )
    start = time.perf_counter()
    trainer.fit(task, data)
    wall = time.perf_counter() - start
    steady = clock.words_per_s()
    keyed = to_keyed_vectors(data.vocabulary.tokens, task.word_vectors())
    if args.profile:  # after the vectors are taken: the profiled epoch does not count
        profile_epoch(data, task)
    return {"wall_s": wall, "keyed": keyed, "steady_words_per_s": steady and round(steady),
            "engine_in_use": task.engine_in_use, "device": str(task.device)}


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
    wall = result.pop("wall_s")
    scores = evaluate_keyed_vectors(keyed)
    nslightning = args.system != "gensim"
    record = {
        "system": args.system + ("-dense" if args.dense and nslightning else ""),
        "engine": args.engine if nslightning else None,
        "words_per_s": round(corpus_words * args.epochs / wall),
        "wall_s": round(wall, 2),
        "ws353": round(scores["ws353"], 4),
        "simlex": round(scores["simlex"], 4),
        "analogy": round(scores["analogy"], 4),
        "vocab_size": len(keyed),
        "corpus_words": corpus_words,
        "epochs": args.epochs,
        "workers": int(args.workers),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        **result,
    }
    print(json.dumps(record), flush=True)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.system:
        child(args)
        return
    passthrough = sys.argv[1:] if argv is None else argv
    for _ in range(args.repeats):
        for workers in args.workers.split(","):
            for system in args.systems.split(","):
                env = dict(os.environ, OMP_NUM_THREADS=workers)
                command = [sys.executable, __file__, *passthrough, "--workers", workers]
                subprocess.run([*command, "--system", system], check=True, env=env)


if __name__ == "__main__":
    main()
