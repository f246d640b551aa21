"""Runs ``contrastive_reconstruction.py`` over scores x losses x samplers and prints a table.

Each run is its own process (one JSON line each, as the benchmark prints it); the table is
printed in Markdown at the end, for ``benchmarks/RESULTS.md``. Flat scores train with Adam,
hyperbolic ones with geoopt's Riemannian Adam (the task's defaults); the weighted loss is
calibrated for distance scores (the task's default), which ``--no-calibrate`` turns off.

    python benchmarks/contrastive_grid.py --pairs mammals.tsv --dim 10 --epochs 100 --lr 0.05
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

BENCHMARK = Path(__file__).with_name("contrastive_reconstruction.py")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", required=True)
    parser.add_argument("--scores", default="dot,cosine,euclidean,poincare,lorentz")
    parser.add_argument("--losses", default="info_nce,weighted")
    parser.add_argument("--samplers", default="uniform,hard")
    parser.add_argument("--no-calibrate", action="store_true")
    args, common = parser.parse_known_args()
    rows = []
    for score in args.scores.split(","):
        for loss in args.losses.split(","):
            for sampler in args.samplers.split(","):
                command = [sys.executable, str(BENCHMARK), "--pairs", args.pairs,
                           "--score", score, "--loss", loss, "--sampler", sampler, *common]
                if args.no_calibrate:
                    command.append("--no-calibrate")
                if score == "cosine" and loss == "info_nce" and "--temperature" not in common:
                    command += ["--temperature", "0.1"]
                output = subprocess.run(command, capture_output=True, text=True, check=True)
                result = json.loads(output.stdout.strip().splitlines()[-1])
                print(json.dumps(result), flush=True)
                rows.append(result)
    print("\n| score | loss | sampler | calibrated | mean rank | MAP | MRR | Hits@10 | train s |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        loss = "InfoNCE" if r["loss"] == "info_nce" else f"weighted λ = {r['lam']:g}"
        print(f"| {r['score']} | {loss} | {r['sampler']} | {'yes' if r['calibrated'] else 'no'} "
              f"| {r['mean_rank']} | {r['map']:.3f} | {r['mrr']:.3f} | {r['hits@10']:.3f} "
              f"| {r['train_s']} |")


if __name__ == "__main__":
    main()
