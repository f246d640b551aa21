"""The README's own commands, run as a user runs them, with the figures the README quotes.

Each variant is one ``nslightning fit -c configs/...`` command (a subprocess in a scratch
folder, the cache shared), and its figures are read from the run's ``metrics.csv``. One JSON
line per variant:

    python benchmarks/readme_commands.py                       # every variant
    python benchmarks/readme_commands.py skipgram lm           # some

Fields: variant, command, wall_s (the whole command: start-up, data, training, evaluation),
then the run's last logged value of each metric the README quotes (``val/ws353``,
``val/simlex``, ``val/analogy``; ``val/ppl`` and ``test/ppl``; ``val/mrr``, ``val/map``,
``val/lee_pearson``), and ``val/ppl`` and ``val/lee_pearson`` at every validation.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"

#: name -> (the README's arguments after ``nslightning fit``, metrics to report)
VARIANTS: dict[str, tuple[list[str], list[str]]] = {
    "skipgram": (["-c", "configs/skipgram.yaml"], ["val/ws353", "val/simlex", "val/analogy"]),
    "skipgram_unique_redraw_known_hits": (
        ["-c", "configs/skipgram.yaml", "--model.sampler",
         "configs/samplers/unigram_unique_redraw.yaml", "--model.accidental_hits", "known"],
        ["val/ws353", "val/simlex", "val/analogy"],
    ),
    "contrastive": (["-c", "configs/contrastive.yaml"],
                    ["val/mrr", "val/map", "val/lee_pearson"]),
    "contrastive_cosine_info_nce": (
        ["-c", "configs/contrastive.yaml", "--model.score", "cosine", "--model.loss",
         "configs/losses/info_nce.yaml", "--model.loss.init_args.temperature", "0.1"],
        ["val/mrr", "val/map", "val/lee_pearson"],
    ),
    "contrastive_inductive": (["-c", "configs/contrastive_inductive.yaml"],
                              ["val/map", "val/lee_pearson", "val/lee_spearman"]),
    "lm": (["-c", "configs/lm.yaml"], ["val/ppl", "test/ppl"]),
}

#: metrics also reported at every validation, not only the last
SERIES = ("val/ppl", "val/lee_pearson")


def metrics(run_folder: Path) -> dict[str, list[float]]:
    """Every logged value of each metric of the run, in order."""
    values: dict[str, list[float]] = {}
    with (run_folder / "metrics.csv").open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            for key, value in row.items():
                if value not in ("", None):
                    values.setdefault(key, []).append(float(value))
    return values


def run(name: str, args: list[str], wanted: list[str], scratch: Path) -> dict[str, Any]:
    folder = scratch / name
    folder.mkdir()
    (folder / "configs").symlink_to(CONFIGS)  # the README's relative paths
    command = [sys.executable, "-m", "nslightning", "fit", *args,
               "--trainer.enable_progress_bar", "false"]
    start = time.perf_counter()
    subprocess.run(command, cwd=folder, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    (run_folder,) = folder.glob("outputs/*/logs/version_*")
    result: dict[str, Any] = {"variant": name, "command": "nslightning fit " + " ".join(args),
                              "wall_s": round(wall, 1)}
    if name == "lm":  # the README's second command: test the best checkpoint
        best = run_folder / "checkpoints/best.ckpt"
        subprocess.run([sys.executable, "-m", "nslightning", "test", *args, "--ckpt_path",
                        str(best), "--trainer.enable_progress_bar", "false"],
                       cwd=folder, check=True, stdout=subprocess.DEVNULL)
        (tested,) = (set(folder.glob("outputs/*/logs/version_*")) - {run_folder})
        logged = metrics(run_folder) | {"test/ppl": metrics(tested)["test/ppl"]}
    else:
        logged = metrics(run_folder)
    for key in SERIES:
        if key in wanted:
            result[f"{key} per validation"] = [round(v, 4) for v in logged[key]]
    for key in wanted:
        result[key] = round(logged[key][-1], 4)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="*", help=f"some of {', '.join(VARIANTS)}")
    names = parser.parse_args(argv).variants or list(VARIANTS)
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; choose from {', '.join(VARIANTS)}")
    os.environ.setdefault("WANDB_MODE", "offline")
    with tempfile.TemporaryDirectory(prefix="readme-commands-") as scratch:
        for name in names:
            args, wanted = VARIANTS[name]
            print(json.dumps(run(name, args, wanted, Path(scratch))), flush=True)


if __name__ == "__main__":
    main()
