"""Negative samplers: draws per second and table memory, against torch.multinomial and numpy.

One JSON line per (sampler, V, K) on stdout; a readable table on stderr:

    python benchmarks/samplers.py --threads 1

Fields: sampler, device, threads, vocab (V), k (K), rows (positives per call), draws_per_s
(median over repeats of ids drawn per second, log_q and mask included), setup_s, table_mb
(bytes of the sampler's buffers), and for hard negatives ``scoring_s`` / ``base_s`` /
``overhead`` (hard sample time over base-pool draw + one scoring pass). Peers in the same run:
``torch.multinomial`` (the usual PyTorch way to draw unigram^0.75 negatives) and numpy's
``Generator.choice(p=...)``; each row is drawn from the same unigram^0.75 table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from nslightning.samplers import (
    HardNegativeSampler,
    InBatchSampler,
    LogUniformSampler,
    MemoryBankSampler,
    MixedSampler,
    NegativeSampler,
    UniformSampler,
    UnigramSampler,
)

TABLE_SAMPLERS: dict[str, Callable[[], NegativeSampler]] = {
    "uniform": UniformSampler,
    "unigram": lambda: UnigramSampler(power=0.75),
    "log_uniform": LogUniformSampler,
    "unigram_unique": lambda: UnigramSampler(power=0.75, unique=True),
    "unigram_redraw": lambda: UnigramSampler(power=0.75, redraw=True),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=float, nargs="+", default=[1e4, 1e5, 1e6, 1e7])
    parser.add_argument("--k", type=int, nargs="+", default=[5, 64, 1024])
    parser.add_argument("--draws", type=int, default=1 << 20, help="ids drawn per call")
    parser.add_argument("--batch", type=int, default=4096, help="rows for batch-based samplers")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dim", type=int, default=64, help="embedding size of the scorer")
    parser.add_argument(
        "--groups", default="table,peers,batch,hard", help="comma list of what to measure"
    )
    return parser.parse_args(argv)


def zipf_counts(vocab: int) -> torch.Tensor:
    """Counts of a Zipf-distributed corpus of about 1e9 tokens, most frequent first."""
    return (1e8 / torch.arange(1, vocab + 1, dtype=torch.float64)).floor() + 1


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(call: Callable[[], Any], repeats: int, device: torch.device) -> float:
    """Median seconds of ``call`` over ``repeats`` runs, after one warm-up run."""
    call()
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def table_mb(sampler: torch.nn.Module) -> float:
    return sum(b.numel() * b.element_size() for b in sampler.buffers()) / 2**20


def record(**fields: Any) -> dict[str, Any]:
    print(json.dumps(fields), flush=True)
    return fields


def measure_sampler(
    name: str, sampler: NegativeSampler, counts: torch.Tensor, k: int, rows: int,
    args: argparse.Namespace, **sample_kwargs: Any,
) -> dict[str, Any]:
    device = torch.device(args.device)
    start = time.perf_counter()
    sampler.setup(counts)
    setup_s = time.perf_counter() - start
    sampler.to(device)
    vocab = counts.numel()
    positives = torch.randint(vocab, (rows,), device=device)
    kwargs = {key: value for key, value in sample_kwargs.items() if key != "anchors"}
    anchors = positives if "anchors" in sample_kwargs else None
    columns = sampler.sample(positives, k, anchors=anchors, **kwargs).ids.shape[-1]
    seconds = timed(
        lambda: sampler.sample(positives, k, anchors=anchors, **kwargs), args.repeats, device
    )
    return record(
        sampler=name, device=device.type, threads=args.threads, vocab=vocab, k=k, rows=rows,
        columns=columns, draws_per_s=rows * columns / seconds, setup_s=round(setup_s, 4),
        table_mb=round(table_mb(sampler), 3),
    )


def measure_peers(counts: torch.Tensor, k: int, rows: int, args: argparse.Namespace) -> None:
    device = torch.device(args.device)
    probs = counts.pow(0.75)
    probs /= probs.sum()
    weights = probs.float().to(device)
    generator = torch.Generator(device=device).manual_seed(0)
    vocab = counts.numel()
    if rows * k <= 1 << 24:  # torch.multinomial is limited to 2^24 categories... and draws
        seconds = timed(
            lambda: torch.multinomial(
                weights.expand(1, -1), rows * k, replacement=True, generator=generator
            ),
            args.repeats, device,
        )
        record(
            sampler="peer:torch.multinomial", device=device.type, threads=args.threads,
            vocab=vocab, k=k, rows=rows, columns=k, draws_per_s=rows * k / seconds,
        )
    rng = np.random.default_rng(0)
    p = probs.numpy()
    seconds = timed(lambda: rng.choice(vocab, size=(rows, k), p=p), args.repeats, device)
    record(
        sampler="peer:numpy.choice", device="cpu", threads=args.threads, vocab=vocab, k=k,
        rows=rows, columns=k, draws_per_s=rows * k / seconds,
    )


def measure_hard(counts: torch.Tensor, k: int, args: argparse.Namespace) -> None:
    """Hard negatives over a unigram pool of 4K: cost against base draw + one scoring pass."""
    device = torch.device(args.device)
    vocab, rows, pool = counts.numel(), args.batch, 4 * k
    generator = torch.Generator().manual_seed(0)
    anchor_table = torch.randn(vocab, args.dim, generator=generator).to(device)
    item_table = torch.randn(vocab, args.dim, generator=generator).to(device)

    def scorer(anchors: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        return torch.bmm(item_table[candidates], anchor_table[anchors].unsqueeze(-1)).squeeze(-1)

    hard = HardNegativeSampler(UnigramSampler(power=0.75), pool_size=pool)
    result = measure_sampler(
        "hard_topk_pool4k", hard, counts, k, rows, args, anchors=True, scorer=scorer
    )
    base = UnigramSampler(power=0.75)
    base.setup(counts)
    base.to(device)
    positives = torch.randint(vocab, (rows,), device=device)
    base_s = timed(lambda: base.sample(positives, pool), args.repeats, device)
    candidates = base.sample(positives, pool).ids
    with torch.no_grad():
        scoring_s = timed(lambda: scorer(positives, candidates), args.repeats, device)
    hard_s = rows * result["columns"] / result["draws_per_s"]
    record(
        sampler="hard_topk_pool4k:cost", device=device.type, threads=args.threads, vocab=vocab,
        k=k, rows=rows, hard_s=hard_s, base_s=base_s, scoring_s=scoring_s,
        overhead=hard_s / (base_s + scoring_s),
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    groups = set(args.groups.split(","))
    results: list[dict[str, Any]] = []
    for vocab in (int(v) for v in args.vocab):
        counts = zipf_counts(vocab)
        for k in args.k:
            rows = max(1, args.draws // k)
            if "table" in groups:
                for name, factory in TABLE_SAMPLERS.items():
                    if name == "unigram_unique" and k > vocab // 4:
                        continue
                    results.append(measure_sampler(name, factory(), counts, k, rows, args))
            if "peers" in groups:
                measure_peers(counts, k, rows, args)
            if "batch" in groups and vocab == int(args.vocab[0]):
                batch = args.batch
                in_batch = InBatchSampler()
                results.append(measure_sampler("in_batch", in_batch, counts, k, batch, args))
                bank = MemoryBankSampler(size=65536)
                results.append(measure_sampler("memory_bank_64k", bank, counts, k, rows, args))
                mixed = MixedSampler([InBatchSampler(), UnigramSampler()], [0.5, 0.5])
                results.append(
                    measure_sampler("mixed_inbatch_unigram", mixed, counts, k, batch, args)
                )
            if "hard" in groups and vocab <= 10**6 and k <= 64:
                measure_hard(counts, k, args)
    header = f"{'sampler':26s} {'V':>9s} {'K':>5s} {'M draws/s':>10s} {'table MB':>9s}"
    print(header, file=sys.stderr)
    for r in results:
        print(
            f"{r['sampler']:26s} {r['vocab']:9d} {r['k']:5d} {r['draws_per_s'] / 1e6:10.1f} "
            f"{r['table_mb']:9.1f}",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
