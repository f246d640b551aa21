"""Checks that a refactor changed no result: the same seeded runs in two checkouts end with
bit-identical checkpoints.

Each run is ``python -m nslightning fit`` with a checkout's own ``configs/`` (so a config file
that gained a key still runs in both), on gensim's Lee corpus, for a few single-thread steps.
The old checkout is ``git worktree add`` of ``--old`` (a commit), the new one the working tree.
Every entry of the final ``last.ckpt`` state dicts is compared exactly, tensors and the samplers'
extra state (the language model's sampler moved from ``output.sampler.`` to ``sampler.``, and a
sampler's ``num_items`` is now ``vocab_size``: old names are renamed). Entries that only one
side has are listed (a pool-mode hard-negative sampler no longer saves index mode's empty
buffers). Prints one JSON line per run and exits 1 if a common entry differs::

    python tools/same_seed.py --old 7e05267
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from gensim.test.utils import datapath

ROOT = Path(__file__).resolve().parents[1]
LEE = datapath("lee_background.cor")
SHORT = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "12",
         "--trainer.limit_val_batches", "0", "--seed_everything", "0"]
SKIPGRAM = ["-c", "configs/skipgram.yaml", "--data.corpus", LEE, "--data.batch_size", "4096",
            "--model.threads", "1", *SHORT]
CONTRASTIVE = ["-c", "configs/contrastive.yaml", *SHORT]
LM_OLD = ["-c", "configs/lm.yaml", "--data.corpus", LEE, "--model.num_negatives", "64",
          "--model.embedding_dim", "32", "--model.hidden_size", "32", *SHORT]
LM = ["-c", "configs/lm.yaml", "--data.corpus", LEE, "--model.num_negatives", "64",
      "--model.dim", "32", "--model.hidden_size", "32", *SHORT]

#: name -> (arguments in the old checkout, arguments in the new one); "configs/..." paths are
#: read from each checkout.
RUNS: dict[str, tuple[list[str], list[str]]] = {
    "skipgram_fused": (SKIPGRAM, SKIPGRAM),
    "skipgram_autograd": ([*SKIPGRAM, "--model.engine", "autograd"],
                          [*SKIPGRAM, "--model.engine", "autograd"]),
    "skipgram_lam_0.5": ([*SKIPGRAM, "--model.lam", "0.5"],
                         [*SKIPGRAM, "--model.loss.lam", "0.5"]),
    "skipgram_unique_redraw_known_hits": (
        [*SKIPGRAM, "--model.sampler", "configs/samplers/unigram_unique_redraw.yaml",
         "--model.exclude_window", "true"],
        [*SKIPGRAM, "--model.sampler", "configs/samplers/unigram_unique_redraw.yaml",
         "--model.accidental_hits", "known"],
    ),
    "skipgram_hard_negatives": (
        [*SKIPGRAM, "--model.engine", "autograd", "--model.sampler",
         "configs/samplers/hard_negative.yaml"],
        [*SKIPGRAM, "--model.engine", "autograd", "--model.sampler",
         "configs/samplers/hard_negative.yaml"],
    ),
    "contrastive_weighted": (CONTRASTIVE, CONTRASTIVE),
    "contrastive_cosine_info_nce": (  # unigram negatives: the logQ correction of the README's
        [*CONTRASTIVE, "--model.score", "cosine", "--model.loss",
         "configs/losses/info_nce.yaml", "--model.loss.init_args.temperature", "0.1"],
        [*CONTRASTIVE, "--model.score", "cosine", "--model.loss",
         "configs/losses/info_nce.yaml", "--model.loss.init_args.temperature", "0.1"],
    ),
    "contrastive_info_nce_in_batch": (
        [*CONTRASTIVE, "--model.loss", "configs/losses/info_nce.yaml", "--model.sampler",
         "configs/samplers/in_batch.yaml"],
        [*CONTRASTIVE, "--model.loss", "configs/losses/info_nce.yaml", "--model.sampler",
         "configs/samplers/in_batch.yaml"],
    ),
    "contrastive_debiased_mixed": (
        [*CONTRASTIVE, "--model.loss", "configs/losses/debiased.yaml", "--model.score",
         "cosine", "--model.sampler", "configs/samplers/mixed.yaml"],
        [*CONTRASTIVE, "--model.loss", "configs/losses/debiased.yaml", "--model.score",
         "cosine", "--model.sampler", "configs/samplers/mixed.yaml"],
    ),
    "lm_full": ([*LM_OLD, "--model.output", "full"], [*LM, "--model.output", "full"]),
    "lm_sampled_softmax": (LM_OLD, LM),
    "lm_nce": ([*LM_OLD, "--model.output", "nce"], [*LM, "--model.output", "nce"]),
    "lm_negative_sampling_per_token": (
        [*LM_OLD, "--model.output", "negative_sampling", "--model.shared_negatives", "false"],
        [*LM, "--model.output", "negative_sampling", "--model.shared_negatives", "false"],
    ),
}
RENAMED = {"output.sampler.": "sampler."}  # the language model's sampler, before the base
RENAMED_STATE = {"num_items": "vocab_size"}  # in a sampler's extra state


def run(checkout: Path, args: list[str], cache: Path) -> dict[str, torch.Tensor]:
    """Runs ``nslightning fit`` from ``checkout`` in a fresh folder; its last state dict."""
    resolved = [str(checkout / a) if a.startswith("configs/") else a for a in args]
    with tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, "PYTHONPATH": str(checkout), "NSLIGHTNING_CACHE": str(cache),
               "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
        subprocess.run([sys.executable, "-m", "nslightning", "fit", *resolved], cwd=folder,
                       env=env, check=True, capture_output=True, timeout=900)
        found = sorted(Path(folder).rglob("last.ckpt"))
        if not found:
            raise RuntimeError(f"no last.ckpt written by {' '.join(args)}")
        state = torch.load(found[-1], map_location="cpu", weights_only=False)["state_dict"]
    for old, new in RENAMED.items():
        state = {(new + k[len(old):] if k.startswith(old) else k): v for k, v in state.items()}
    return state


def same(old: Any, new: Any) -> bool:
    """Exact equality of tensors, and of dicts, lists and values holding them (a sampler's
    extra state: its generator state and size, with old key names renamed)."""
    if isinstance(old, torch.Tensor) or isinstance(new, torch.Tensor):
        return (isinstance(old, torch.Tensor) and isinstance(new, torch.Tensor)
                and old.dtype == new.dtype and old.shape == new.shape and torch.equal(old, new))
    if isinstance(old, dict) and isinstance(new, dict):
        old = {RENAMED_STATE.get(key, key): value for key, value in old.items()}
        return old.keys() == new.keys() and all(same(old[k], new[k]) for k in old)
    if isinstance(old, list | tuple) and isinstance(new, list | tuple):
        return len(old) == len(new) and all(same(a, b) for a, b in zip(old, new, strict=True))
    return bool(old == new)


def compare(old: dict[str, Any], new: dict[str, Any]) -> dict[str, list[str]]:
    """The keys whose values differ, and those only one side has."""
    return {
        "differ": sorted(key for key in set(old) & set(new) if not same(old[key], new[key])),
        "only_old": sorted(set(old) - set(new)),
        "only_new": sorted(set(new) - set(old)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", required=True, help="the commit to compare with")
    parser.add_argument("--runs", nargs="*", default=list(RUNS), choices=list(RUNS))
    args = parser.parse_args()
    failed = False
    with tempfile.TemporaryDirectory() as scratch:
        old_tree = Path(scratch) / "old"
        subprocess.run(["git", "worktree", "add", "--detach", str(old_tree), args.old],
                       cwd=ROOT, check=True, capture_output=True)
        try:
            for name in args.runs:
                old_args, new_args = RUNS[name]
                before = run(old_tree, old_args, Path(scratch) / "cache-old")
                after = run(ROOT, new_args, Path(scratch) / "cache-new")
                result = compare(before, after)
                failed |= bool(result["differ"])
                print(json.dumps({"run": name, "entries": len(after),
                                  "identical": not result["differ"], **result}), flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old_tree)], cwd=ROOT,
                           check=False, capture_output=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
