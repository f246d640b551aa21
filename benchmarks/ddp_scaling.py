"""Throughput of each task with 1, 2, ... DDP processes, as users run them (the CLI), in one run.

For every task and process count the shipped config trains for a fixed number of steps per
process with ``configs/trainer/ddp.yaml``, in its own temporary folder, and the script prints one
JSON line: the task, processes, device, the throughput the ``Throughput`` callback logged
(summed over ranks; the median over its windows of 10 steps and the epoch's remainder; the
clock starts at the first step, so start-up is left out), the wall time of the whole command
and the speed-up over one process.

    python benchmarks/ddp_scaling.py --processes 1,2                  # CPU processes (gloo)
    python benchmarks/ddp_scaling.py --accelerator gpu --processes 1,2,4,8   # GPUs (NCCL)

On the CPU every process gets ``--threads`` intra-op threads (default 1), so 2 processes use
2 cores where 1 process uses 1: the figure is how DDP scales with the cores it is given.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"

# Per task: the config, the arguments that bound the run, and the throughput metric.
TASKS: dict[str, tuple[str, list[str], str]] = {
    "skipgram": (
        "skipgram.yaml",
        ["--trainer.limit_train_batches", "10", "--data.batch_size", "16384",
         "--model.diagnostics_every", "0"],
        "train/words_per_s",
    ),
    "contrastive": (
        "contrastive.yaml",
        ["--trainer.limit_train_batches", "40", "--trainer.limit_val_batches", "0",
         "--data.batch_size", "1024", "--model.diagnostics_every", "0",
         "--model.sampler", str(CONFIGS / "samplers/in_batch.yaml"),
         "--model.sampler.init_args.across_ranks", "true"],
        "train/pairs_per_s",
    ),
    "lm": (
        "lm.yaml",
        ["--trainer.limit_train_batches", "40", "--trainer.limit_val_batches", "0"],
        "train/words_per_s",
    ),
}


def run_task(
    task: str, processes: int, accelerator: str, threads: int, extra: list[str]
) -> dict[str, object]:
    config, bounds, metric = TASKS[task]
    with tempfile.TemporaryDirectory() as folder:
        command = [
            sys.executable, "-m", "nslightning", "fit", "-c", str(CONFIGS / config),
            "-c", str(CONFIGS / "trainer/ddp.yaml"), "--trainer.accelerator", accelerator,
            "--trainer.devices", str(processes), "--trainer.max_epochs", "1",
            "--trainer.enable_progress_bar", "false", "--trainer.log_every_n_steps", "1",
            *bounds, *extra,
        ]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "WANDB_MODE": "offline"}
        start = time.perf_counter()
        done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"{task} with {processes} processes failed:\n{done.stderr[-4000:]}")
        metrics = next(Path(folder).glob("outputs/*/logs/version_*/metrics.csv"))
        with metrics.open(encoding="utf-8") as handle:
            values = [float(row[metric]) for row in csv.DictReader(handle) if row.get(metric)]
    return {
        "task": task,
        "processes": processes,
        "accelerator": accelerator,
        "metric": metric,
        "throughput": statistics.median(values),
        "windows": len(values),
        "wall_s": round(wall, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default="skipgram,contrastive,lm")
    parser.add_argument("--processes", default="1,2")
    parser.add_argument("--accelerator", default="cpu", choices=["cpu", "gpu"])
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads per process")
    parser.add_argument("--engine", choices=["auto", "fused", "autograd"], default=None,
                        help="skip-gram's engine (default: the config's)")
    args = parser.parse_args()
    device = (
        torch.cuda.get_device_name(0) if args.accelerator == "gpu" else platform.processor()
        or platform.machine()
    )
    for task in args.tasks.split(","):
        base: float | None = None
        for processes in (int(p) for p in args.processes.split(",")):
            extra = ["--model.engine", args.engine] if task == "skipgram" and args.engine else []
            result = run_task(task, processes, args.accelerator, args.threads, extra)
            throughput = float(result["throughput"])  # type: ignore[arg-type]
            base = throughput if base is None else base
            result.update(
                speedup=round(throughput / base, 2), threads_per_process=args.threads,
                engine=args.engine if task == "skipgram" else None,
                device=device, cpu_count=os.cpu_count(), torch=torch.__version__,
            )
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
