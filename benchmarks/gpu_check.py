"""Every GPU figure of the project in one run of under 8 minutes, as JSON lines.

The time limits of the checks add up to 470 s, so the whole run ends within 8 minutes even
when a check hangs; a check that fails or times out gives a line with its ``error``.

Run it as soon as a GPU is lent (the device tool), then put its lines in RESULTS.md:

    python benchmarks/gpu_check.py --corpus .gpu/corpus.txt.gz --out "$OUT/gpu_check.jsonl"

Checks, each in its own process with its own time limit, each line tagged with ``check``:

- ``env``: the GPU, torch, Triton and numba versions;
- ``kernel_agreement``: the Triton kernel with one program against the numba kernel with one
  thread on the same chunk (the same per-pair algorithm: the tables must agree to 1e-4);
- ``kernel``: the fused skip-gram Triton kernel alone on real windows of the corpus (CUDA events,
  one chunk of ``--chunk`` tokens, dim 100, K 5, window 5), for several rows per program;
- ``skipgram_gpu_fused``: ``SkipGramTask(engine="fused")`` trained on the GPU through Lightning
  (``skipgram_vs_gensim.py``): words/s (whole fit, and steady state after the first step), and
  WS353 / SimLex / analogy, for the default rows per program and the others of ``--rows``;
- ``skipgram_cpu_fused``: the same training with the numba engine on the machine's CPU cores:
  the quality reference at equal epochs (target: the GPU within 0.02);
- ``skipgram_gpu_autograd``: the autograd engine on the GPU, one epoch, for the ratio;
- ``lm``: the LSTM language model, sampled softmax (K 1024) against the full softmax, train
  tokens/s at 100K+ types (``lm_sampled_vs_full.py``, the corpus at min_count 1);
- ``contrastive``: the contrastive task's pairs/s on one GPU (``ddp_scaling.py``);
- ``hyperbolic``: the Poincaré model of the WordNet mammal closure on the GPU (geoopt's
  Riemannian Adam, float64, dim 5, 100 epochs; ``contrastive_reconstruction.py``): MAP (300
  epochs reach 0.937 on the CPU) and training time, ``--mammals`` from ``gpu_prepare.sh``.

``bash benchmarks/gpu_prepare.sh`` prepares ``.gpu/`` here: the corpus (4.4M tokens, 186K
types, gzipped, from ``benchmarks/skipgram_corpus.py``) and wheels for what the GPU image lacks
(it has torch, Lightning, torchmetrics, Triton and numba, not gensim or jsonargparse); its header
gives the device command that carries ``.gpu`` and runs this script. ``--smoke`` runs every
check on the CPU with small sizes, to try the script without a GPU (2 m 50 s with the corpus
above on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def emit(record: dict[str, Any], out: Path | None) -> None:
    line = json.dumps(record)
    print(line, flush=True)
    if out is not None:
        with out.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def run_script(check: str, command: list[str], timeout: float, out: Path | None,
               **tags: Any) -> None:
    """Runs a benchmark script; emits each of its JSON lines tagged, or the failure."""
    start = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, *command], capture_output=True, text=True, timeout=timeout,
            env={**os.environ, "WANDB_MODE": "offline"},
        )
    except subprocess.TimeoutExpired:
        emit({"check": check, **tags, "error": f"timed out after {timeout:.0f} s"}, out)
        return
    records = json_lines(done.stdout)
    if done.returncode != 0 or not records:
        emit({"check": check, **tags, "error": done.stderr[-2000:]}, out)
        return
    for record in records:
        emit({"check": check, **tags, **record,
              "check_wall_s": round(time.perf_counter() - start, 1)}, out)


def environment(smoke: bool) -> dict[str, Any]:
    import numba
    import torch

    record: dict[str, Any] = {
        "check": "env", "python": platform.python_version(), "torch": torch.__version__,
        "numba": numba.__version__, "cpu_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        record["gpu"] = torch.cuda.get_device_name(0)
    try:
        import triton

        record["triton"] = triton.__version__
    except ImportError:
        record["triton"] = None
    if smoke:
        record["smoke"] = True
    return record


def kernel_agreement(device_type: str) -> dict[str, Any]:
    """The GPU kernel with one program against the numba kernel with one thread, on the same
    small random chunk: the same per-pair algorithm, so the tables agree to float32 rounding."""
    import torch

    from nslightning.kernels import fused_sgns_update
    from nslightning.kernels.sgns_numba import set_threads

    g = torch.Generator().manual_seed(0)
    vocab, rows = 500, 400
    centers = torch.randint(0, vocab, (rows,), generator=g)
    contexts = torch.randint(0, vocab, (rows, 10), generator=g)
    mask = torch.rand(rows, 10, generator=g) < 0.6
    negatives = torch.randint(0, vocab, (rows, 5), generator=g)
    keep = negatives != centers[:, None]
    start0 = (torch.rand(vocab, 100, generator=g) - 0.5) / 10
    start1 = torch.randn(vocab, 100, generator=g) / 10
    results = {}
    for device in ("cpu", device_type):
        set_threads(1)
        syn0, syn1 = start0.clone().to(device), start1.clone().to(device)
        on = [t.to(device) for t in (centers, contexts, mask, negatives, keep)]
        loss, pairs = fused_sgns_update(syn0, syn1, *on, 0.05, 0.01, segments=1)
        results[device] = (syn0.cpu(), syn1.cpu(), float(loss), float(pairs))
    cpu, other = results["cpu"], results[device_type]
    difference = max(float((cpu[i] - other[i]).abs().max()) for i in (0, 1))
    return {"check": "kernel_agreement", "device": device_type, "max_abs_diff": difference,
            "loss_cpu": cpu[2], "loss_device": other[2], "pairs": cpu[3],
            "ok": difference < 1e-4 and cpu[3] == other[3]}


def kernel_check(corpus: str, chunk: int, rows: list[int], smoke: bool) -> list[dict[str, Any]]:
    """The Triton kernel alone on one chunk of real windows, timed with CUDA events."""
    import torch

    import nslightning.kernels.sgns_triton as triton_kernel
    from nslightning.data import SkipGramDataModule
    from nslightning.data.windows import skipgram_windows
    from nslightning.kernels import fused_sgns_update
    from nslightning.samplers import UnigramSampler

    device = torch.device("cpu" if smoke else "cuda")
    data = SkipGramDataModule(corpus=corpus, batch_size=chunk)
    data.setup("fit")
    tokens, sentences = data.store.chunk(0, chunk)
    generator = torch.Generator(device=device).manual_seed(0)
    keep = data._keep_prob.to(device) if data._keep_prob is not None else None
    batch = skipgram_windows(tokens.to(device), sentences.to(device), 5, generator,
                             keep_prob=keep)
    sampler = UnigramSampler(seed=0).to(device)
    sampler.setup(data.counts)
    sampler = sampler.to(device)
    negatives = sampler.sample(batch.centers, 5, anchors=batch.centers)
    vocab = data.vocab_size
    results = [kernel_agreement(device.type)]
    for per_program in rows:
        triton_kernel.ROWS_PER_PROGRAM = per_program
        syn0 = ((torch.rand(vocab, 100, device=device) - 0.5) / 100).contiguous()
        syn1 = torch.zeros(vocab, 100, device=device)

        def step(syn0: torch.Tensor = syn0, syn1: torch.Tensor = syn1) -> None:
            fused_sgns_update(syn0, syn1, batch.centers, batch.contexts, batch.mask,
                              negatives.ids, negatives.mask, 0.025, 0.0249, with_loss=False)

        step()  # compile
        repeats = 1 if smoke else 5
        if smoke:
            start_time = time.perf_counter()
            for _ in range(repeats):
                step()
            seconds = (time.perf_counter() - start_time) / repeats
        else:
            torch.cuda.synchronize()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(repeats):
                step()
            end.record()
            torch.cuda.synchronize()
            seconds = start.elapsed_time(end) / 1000 / repeats
        results.append({
            "check": "kernel", "rows_per_program": per_program, "chunk_tokens": int(tokens.numel()),
            "pairs": int(batch.mask.sum()), "kernel_s": round(seconds, 5),
            "kernel_words_per_s": round(tokens.numel() / seconds),
            "finite": bool(torch.isfinite(syn0).all() and torch.isfinite(syn1).all()),
        })
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default="enwiki-sample", help="file (.gz works) or name")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--chunk", type=int, default=1 << 20, help="tokens per GPU step")
    parser.add_argument("--rows", default="8,32,128", help="rows per program to compare")
    parser.add_argument("--out", type=Path, default=None, help="also append the lines here")
    parser.add_argument("--mammals", default=".gpu/mammals.tsv", help="the mammal closure")
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny sizes: try the script")
    parser.add_argument("--kernel-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    rows = [int(value) for value in args.rows.split(",")]
    if args.kernel_only:  # the child process of the kernel check
        for record in kernel_check(args.corpus, args.chunk, rows, args.smoke):
            print(json.dumps(record), flush=True)
        return
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
    smoke = args.smoke
    accelerator = "cpu" if smoke else "gpu"
    epochs = 1 if smoke else args.epochs
    chunk = 4096 if smoke else args.chunk
    cpu_threads = os.cpu_count() or 1
    emit(environment(smoke), args.out)

    run_script("kernel", [__file__, "--kernel-only", "--corpus", args.corpus, "--chunk",
                          str(chunk), "--rows", args.rows, *(["--smoke"] if smoke else [])],
               55, args.out)
    skipgram = [str(HERE / "skipgram_vs_gensim.py"), "--systems", "nslightning",
                "--corpus", args.corpus, "--epochs", str(epochs)]
    for index, per_program in enumerate(rows):
        run_script("skipgram_gpu_fused",
                   [*skipgram, "--accelerator", accelerator, "--engine", "fused",
                    "--batch-size", str(chunk), "--rows-per-program", str(per_program)],
                   80 if index == 0 else 45, args.out)
    run_script("skipgram_cpu_fused",
               [*skipgram, "--accelerator", "cpu", "--engine", "fused",
                "--workers", str(cpu_threads)], 60, args.out)
    run_script("skipgram_gpu_autograd",
               [*skipgram[:-1], "1", "--accelerator", accelerator, "--engine", "autograd",
                "--batch-size", str(chunk)], 45, args.out)
    lm_limit = "5" if smoke else "200"
    run_script("lm", [str(HERE / "lm_sampled_vs_full.py"), "--corpus", args.corpus,
                      "--min-count", "1", "--epochs", "1", "--objectives",
                      "full,sampled_softmax", "--limit-train-batches", lm_limit,
                      "--limit-eval-batches", "2", "--accelerator", accelerator],
               75, args.out)
    run_script("contrastive", [str(HERE / "ddp_scaling.py"), "--tasks", "contrastive",
                               "--processes", "1", "--accelerator", accelerator],
               40, args.out)
    mammals = "gensim-hypernyms" if smoke else args.mammals
    run_script("hyperbolic", [str(HERE / "contrastive_reconstruction.py"), "--pairs", mammals,
                              "--dim", "5", "--epochs", "3" if smoke else "100",
                              "--score", "poincare", "--loss", "info_nce", "--temperature",
                              "0.25", "--num-negatives", "10" if smoke else "50", "--lr",
                              "0.01", "--burn-in", "1" if smoke else "20", "--precision",
                              "64-true", "--accelerator", accelerator],
               25, args.out)


if __name__ == "__main__":
    main()
