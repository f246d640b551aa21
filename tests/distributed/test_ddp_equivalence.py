"""DDP through the tasks themselves: each task is built from its shipped config by the command
line, trained on 2 gloo processes, and again on one process with the two ranks' batches as one
batch. The one-process run replays the ranks' negatives (``recorded_draws``), so its updates
must equal DDP's: that proves each task's own DDP wiring (skip-gram's world scaling and its
agreement on the number of updates, the contrastive losses' global normalizers and in-batch
negatives across ranks, the language model's sampled softmax), and that the ranks' samplers,
after the task's ``setup``, draw different negatives.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.corpora import pattern_text
from tests.distributed.processes import (
    CONFIGS,
    ONE_PROCESS,
    RECORD_STEPS,
    TWO_PROCESSES,
    nslightning,
)

ATOL = 1e-6


def sampler_file(folder: Path, name: str, mode: str) -> str:
    """A sampler YAML whose draws are recorded (DDP) or replayed (one process) in ``folder``."""
    path = folder / f"{name}-{mode}.yaml"
    path.write_text(
        f"class_path: tests.distributed.recorded_draws.{name}\n"
        f"init_args:\n  folder: {json.dumps(str(folder / 'draws'))}\n  mode: {mode}\n",
        encoding="utf-8",
    )
    return str(path)


def train_both(tmp_path: Path, common: list[str], per_rank: list[str], whole: list[str],
               sampler: str | None = None) -> tuple[list[dict], dict, list[dict]]:
    """Trains on two processes (``per_rank``: sizes per rank) and on one (``whole``: the sizes
    of both ranks together); returns each rank's record, the one process's record and the
    ranks' recorded draws."""
    records = []
    for devices, sizes, mode in ((TWO_PROCESSES, per_rank, "record"),
                                 (ONE_PROCESS, whole, "replay")):
        folder = tmp_path / mode
        folder.mkdir()
        swap = ["--model.sampler", sampler_file(tmp_path, sampler, mode)] if sampler else []
        nslightning(folder, "fit", *common, *devices, *sizes, *swap,
                    f"--trainer.callbacks+={RECORD_STEPS}",
                    f"--trainer.callbacks.folder={folder / 'steps'}", timeout=200)
        records.append(sorted((folder / "steps").glob("rank*.pt")))
    ranks = [torch.load(path, weights_only=False) for path in records[0]]
    (single,) = [torch.load(path, weights_only=False) for path in records[1]]
    draws = [torch.load(tmp_path / "draws" / f"rank{rank}.pt") for rank in (0, 1)] if sampler \
        else []
    return ranks, single, draws


def assert_same_updates(ranks: list[dict], single: dict, steps: int) -> None:
    """Both ranks and the one process start equal and are equal after every step, and the
    steps moved the parameters."""
    assert len(ranks) == 2
    assert ranks[0]["global_step"] == ranks[1]["global_step"] == single["global_step"] == steps
    for name, start in single["start"].items():
        for rank in ranks:
            torch.testing.assert_close(rank["start"][name], start, atol=0, rtol=0)
    assert len(single["after"]) == len(ranks[0]["after"]) == len(ranks[1]["after"])
    moved = 0.0
    for step, expected in enumerate(single["after"]):
        for rank, record in enumerate(ranks):
            for name, value in expected.items():
                torch.testing.assert_close(
                    record["after"][step][name], value, atol=ATOL, rtol=0,
                    msg=lambda text, n=name, s=step, r=rank: f"{n}, batch {s}, rank {r}: {text}",
                )
        moved = max(moved, *((value - single["start"][name]).abs().max().item()
                             for name, value in expected.items()))
    assert moved > 1e-3  # the comparison is not of parameters that did not move


def assert_ranks_drew_differently(draws: list[dict]) -> None:
    """After the task's ``setup`` each rank's sampler has its own rank, and the ranks' first
    draws differ."""
    assert [draw["sampler_rank"] for draw in draws] == [0, 1]
    first, second = (draw["calls"][0]["ids"] for draw in draws)
    assert first.shape == second.shape
    assert not torch.equal(first, second)


def skipgram_corpus(path: Path) -> Path:
    """Four chunks of 24 tokens: three of four 6-word sentences, then one of 24 one-word
    sentences (no pairs: in the second step rank 1 has no update and must still join rank 0's
    gradient all-reduce)."""
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(12)]
    lines = [" ".join(rng.choice(words, 6)) for _ in range(12)]
    lines += [str(rng.choice(words)) for _ in range(24)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "optimizer",
    [[],
     # SparseSGD's repeat cap at work: most rows occur more than 4 times in an update
     ["--model.optimizer", "nslightning.optim.SparseSGD", "--model.optimizer.max_repeats", "4"]],
    ids=["default", "max_repeats-4"],
)
def test_skipgram_update_under_ddp_equals_one_process(tmp_path: Path, optimizer: list[str]) -> None:
    common = [
        "-c", str(CONFIGS / "skipgram.yaml"),
        "--data.corpus", str(skipgram_corpus(tmp_path / "corpus.txt")), "--data.min_count", "1",
        "--data.window", "1", "--data.sample", "null", "--data.shuffle", "false",
        "--model.engine", "autograd", "--model.dim", "8", "--model.num_negatives", "3",
        "--model.lr", "0.5", "--model.min_lr", "0.1", "--trainer.max_epochs", "1", *optimizer,
    ]
    ranks, single, draws = train_both(
        tmp_path, common,
        per_rank=["--data.batch_size", "24", "--model.update_size", "24"],
        whole=["--data.batch_size", "48", "--model.update_size", "48"],
        sampler="RecordedUnigramSampler",
    )
    # the premise: the one process's batches are the ranks' batches, in rank order
    for step, batch in enumerate(single["batches"]):
        joined = torch.cat([rank["batches"][step]["centers"] for rank in ranks])
        assert torch.equal(batch["centers"], joined)
    # rank 1's second chunk has no pairs: it drew once, rank 0 twice, and both stepped twice
    assert [len(draw["calls"]) for draw in draws] == [2, 1]
    if optimizer:  # the cap binds in the first update: some output row looked up more than 4
        # times over both ranks, and fewer on rank 0 alone
        looked_up = [torch.bincount(torch.cat([rank["batches"][0]["centers"],
                                               draw["calls"][0]["ids"].flatten()]), minlength=12)
                     for rank, draw in zip(ranks, draws, strict=True)]
        total = looked_up[0] + looked_up[1]
        assert ((total > 4) & (looked_up[0] < total)).any()
    assert_same_updates(ranks, single, steps=2)
    assert_ranks_drew_differently(draws)


def pair_file(path: Path) -> Path:
    """32 distinct weighted pairs (two steps of 16, no padding); items repeat, so in-batch
    duplicates are masked and the two ranks' halves keep different numbers of negatives and
    different weight totals."""
    rng = np.random.default_rng(1)
    pairs = rng.permutation([(a, b) for a in range(12) for b in range(10)])[:32]
    weights = rng.integers(1, 5, size=32)
    lines = [f"a{a}\tb{b}\t{w}" for (a, b), w in zip(pairs, weights, strict=True)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def contrastive_args(tmp_path: Path) -> list[str]:
    return [
        "-c", str(CONFIGS / "contrastive_pairs.yaml"),
        "--data.path", str(pair_file(tmp_path / "pairs.tsv")),
        "--data.shared_vocabulary", "false", "--model.shared_embeddings", "false",
        "--model.score", "dot", "--model.init_scale", "0.5", "--model.dim", "6",
        "--model.optimizer", "torch.optim.SGD", "--model.lr", "0.5", "--trainer.max_epochs", "1",
    ]


IN_BATCH_ACROSS_RANKS = [
    "--model.sampler", str(CONFIGS / "samplers/in_batch.yaml"),
    "--model.sampler.init_args.across_ranks", "true",
    "--model.sampler.init_args.all_others", "true", "--model.num_negatives", "100",
    "--model.loss.init_args.temperature", "0.5",
]


def train_pairs_both(tmp_path: Path, common: list[str]) -> tuple[list[dict], dict]:
    """Trains on 2 processes of 8 pairs and on one of 16, and asserts the premise: each step of
    the one process holds exactly the pairs of the ranks' steps."""
    ranks, single, _ = train_both(tmp_path, common, per_rank=["--data.batch_size", "8"],
                                  whole=["--data.batch_size", "16"])
    for step, batch in enumerate(single["batches"]):
        pairs = sorted(torch.stack([batch["anchors"], batch["items"]], 1).tolist())
        assert pairs == sorted(pair for rank in ranks for pair in torch.stack(
            [rank["batches"][step]["anchors"], rank["batches"][step]["items"]], 1).tolist())
        assert "weights" in batch
    return ranks, single


def test_contrastive_in_batch_info_nce_under_ddp_equals_one_process(tmp_path: Path) -> None:
    ranks, single = train_pairs_both(
        tmp_path, [*contrastive_args(tmp_path), *IN_BATCH_ACROSS_RANKS]
    )
    assert_same_updates(ranks, single, steps=2)


def bag_files(folder: Path) -> tuple[Path, Path]:
    """Side files of the anchors ``a0 ... a11`` and items ``b0 ... b9`` of :func:`pair_file`:
    bags of 1 to 3 features out of 5, which several ids share."""
    rng = np.random.default_rng(2)
    paths = []
    for prefix, count in (("a", 12), ("b", 10)):
        lines = [f"{prefix}{i}\t" + " ".join(f"f{f}" for f in rng.integers(0, 5, size))
                 for i, size in enumerate(rng.integers(1, 4, count))]
        path = folder / f"{prefix}-features.tsv"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        paths.append(path)
    return paths[0], paths[1]


def test_contrastive_bag_encoders_gather_vectors_under_ddp_equal_one_process(
    tmp_path: Path,
) -> None:
    """Item vectors that come out of a model (a BagOfFeatures with a hidden layer) are gathered
    with their gradients for in-batch negatives across ranks: each rank encodes only its own
    items, and every rank's loss still trains the encoder that made them."""
    anchors, items = bag_files(tmp_path)
    encoder = "nslightning.models.encoders.BagOfFeatures"
    ranks, single = train_pairs_both(tmp_path, [
        *contrastive_args(tmp_path),
        "--model.anchor_encoder", encoder, "--model.anchor_encoder.path", str(anchors),
        "--model.anchor_encoder.hidden", "[5]",
        "--model.item_encoder", encoder, "--model.item_encoder.path", str(items),
        "--model.item_encoder.hidden", "[5, 4]",
        *IN_BATCH_ACROSS_RANKS,
    ])
    names = set(single["start"])
    assert {"embeddings.item_encoder.bag.weight", "embeddings.item_encoder.mlp.0.weight"} <= names
    assert not any("table" in name for name in names)  # no table: vectors were gathered
    assert_same_updates(ranks, single, steps=2)


def test_contrastive_weighted_loss_under_ddp_equals_one_process(tmp_path: Path) -> None:
    common = [
        *contrastive_args(tmp_path),
        "--model.loss", "nslightning.losses.WeightedContrastiveLoss",
        "--model.loss.init_args.lam", "0.7", "--model.num_negatives", "4",
    ]
    ranks, single, draws = train_both(tmp_path, common, per_rank=["--data.batch_size", "8"],
                                      whole=["--data.batch_size", "16"],
                                      sampler="RecordedUnigramSampler")
    assert_same_updates(ranks, single, steps=2)
    assert_ranks_drew_differently(draws)


def test_language_model_sampled_softmax_under_ddp_equals_one_process(tmp_path: Path) -> None:
    # Candidates per token: shared candidates are one set per rank by design, which no single
    # process draws; the ranks' streams are the one process's streams, in rank order.
    text = pattern_text(tmp_path / "text.txt", lines=60)
    common = [
        "-c", str(CONFIGS / "lm.yaml"), "--data.corpus", str(text), "--data.min_count", "1",
        "--data.eval_batch_size", "2", "--data.bptt", "6", "--model.dim", "8",
        "--model.hidden_size", "8", "--model.dropout", "0", "--model.num_negatives", "4",
        "--model.shared_negatives", "false", "--model.optimizer", "torch.optim.SGD",
        "--model.lr", "0.5", "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "3",
    ]
    ranks, single, draws = train_both(tmp_path, common, per_rank=["--data.batch_size", "2"],
                                      whole=["--data.batch_size", "4"],
                                      sampler="RecordedLogUniformSampler")
    for step, batch in enumerate(single["batches"]):
        joined = torch.cat([rank["batches"][step]["inputs"] for rank in ranks])
        assert torch.equal(batch["inputs"], joined)
    assert_same_updates(ranks, single, steps=3)
    assert_ranks_drew_differently(draws)

