"""One process of a gloo group, run by ``test_gloo.py`` (``python gloo_worker.py SCENARIO RANK
WORLD PORT OUT``): computes what the scenario needs and saves it to ``OUT/rank{RANK}.pt``.

With ``WORLD == 1`` no process group is started and the process holds the whole batch: the
single-process reference of the same computation.
"""

from __future__ import annotations

import math
import os
import sys
from datetime import timedelta

import torch
import torch.distributed as dist

from nslightning.kernels import fused_sgns_update
from nslightning.kernels.sgns_numba import set_threads
from nslightning.samplers import InBatchSampler, MemoryBankSampler, UnigramSampler
from nslightning.tasks.skipgram_engine import RankUpdates


def draws(rank: int, world: int) -> dict:
    """What each rank draws: a unigram table, a memory bank and a capped in-batch sampler."""
    counts = torch.arange(1, 51)
    unigram = UnigramSampler(power=0.75, seed=3)
    unigram.set_rank(rank)
    unigram.setup(counts)
    positives = torch.arange(8) + 8 * rank
    bank = MemoryBankSampler(size=64, seed=3, across_ranks=True)
    bank.set_rank(rank)
    bank.setup(counts)
    bank_draw = bank.sample(positives, 5)
    in_batch = InBatchSampler(seed=3, across_ranks=True)
    in_batch.set_rank(rank)
    in_batch.setup(counts)
    return {
        "unigram": unigram.sample(torch.zeros(64, dtype=torch.long), 5).ids,
        "bank": bank.contents(),
        "bank_draw": bank_draw.ids,
        "in_batch": in_batch.sample(positives, 3).ids,
    }


def skipgram_chunk(seed: int, vocab: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    centers = torch.randint(0, vocab, (30,), generator=g)
    contexts = torch.randint(0, vocab, (30, 4), generator=g)
    negatives = torch.randint(0, vocab, (30, 3), generator=g)
    return centers, contexts, torch.ones(30, 4, dtype=torch.bool), negatives, (
        negatives != centers[:, None]
    )


def fused_merge(rank: int, world: int) -> dict:
    """The fused engine's exchange between ranks: each rank trains its own chunk from the same
    tables, then every rank holds the start plus both ranks' changes. With one process: the
    reference, each chunk trained alone from the start and the changes added up."""
    set_threads(1)
    torch.manual_seed(0)
    vocab, dim = 20, 6
    syn0, syn1 = torch.rand(vocab, dim) - 0.5, torch.randn(vocab, dim) * 0.1
    chunks = [skipgram_chunk(seed, vocab) for seed in range(2)]
    if world == 1:
        total0, total1 = syn0.clone(), syn1.clone()
        for chunk in chunks:
            alone0, alone1 = syn0.clone(), syn1.clone()
            fused_sgns_update(alone0, alone1, *chunk, 0.05, 0.04)
            total0 += alone0 - syn0
            total1 += alone1 - syn1
        return {"syn0": total0, "syn1": total1}
    updates = RankUpdates(every=1)
    updates.before_chunk([syn0, syn1])
    fused_sgns_update(syn0, syn1, *chunks[rank], 0.05, 0.04)
    merged = updates.after_chunk([syn0, syn1], merge_now=False)
    # every 2 chunks, and at an epoch's end: rank-dependent changes of a small table
    table = torch.zeros(2, 3)
    every_two = RankUpdates(every=2)
    every_two.before_chunk([table])
    table[rank] += 1.0
    first = every_two.after_chunk([table], merge_now=False)
    local = table.clone()
    table[rank] += 10.0
    second = every_two.after_chunk([table], merge_now=False)
    table[:, 0] += rank + 1.0
    third = every_two.after_chunk([table], merge_now=True)
    return {"syn0": syn0, "syn1": syn1, "merged": merged, "local": local, "table": table,
            "when": [first, second, third]}


def finite_guard(rank: int, world: int) -> dict:
    """Rank 1 alone sees a non-finite loss (then parameters): every rank must stop, at once on
    the CPU, at the deferred read-back on an accelerator, and before a checkpoint."""
    from types import SimpleNamespace

    from nslightning.tasks.finite_guard import FiniteGuard, NonFiniteLossError

    loop = SimpleNamespace(batch_idx=3, _batches_that_stepped=7)  # step 7 in the logs
    trainer = SimpleNamespace(global_step=20, current_epoch=1,
                              fit_loop=SimpleNamespace(epoch_loop=loop))
    module = torch.nn.Linear(2, 2)
    module.trainer = trainer  # type: ignore[assignment]
    module.device = torch.device("cpu")  # type: ignore[assignment]
    loss = torch.tensor(math.nan if rank == 1 else 0.5)
    messages = {}
    guard = FiniteGuard("advice")
    try:
        guard.check(module, "train/loss", loss, batch_idx=3)  # type: ignore[arg-type]
    except NonFiniteLossError as error:
        messages["check"] = str(error)
    deferred = FiniteGuard("advice", defer=True)
    deferred.check(module, "train/loss", loss, batch_idx=3)  # type: ignore[arg-type]
    try:
        deferred.raise_pending(module)  # type: ignore[arg-type]
    except NonFiniteLossError as error:
        messages["pending"] = str(error)
    if rank == 1:
        with torch.no_grad():
            module.weight[0, 0] = math.inf
    try:
        guard.check_state(module)  # type: ignore[arg-type]
    except NonFiniteLossError as error:
        messages["state"] = str(error)
    return messages


# Lookups of each rank: a backward pass whose step is skipped (zero_grad), then two passes
# accumulated before one step. Rows 1, 2 and 3 occur more often than max_repeats = 2 over both
# ranks, and less often on one rank (or in the last pass) than over both.
STALE = ([1, 1, 1, 1, 1], [1, 1, 1, 1])
FIRST = ([1, 1, 1, 2], [1, 2, 2, 4])
SECOND = ([1, 3, 0], [3, 3, 3, 1])


def lookups(table: torch.nn.Module, passes: tuple[tuple[list[int], list[int]], ...],
            ranks: list[int]) -> torch.Tensor:
    """A loss linear in the rows that ``ranks`` look up in ``passes``, each lookup with its own
    coefficient, from one embedding call (so that one process's gradient lists every lookup)."""
    parts = [lookup[rank] for lookup in passes for rank in ranks]
    ids = torch.tensor([i for part in parts for i in part])
    coefficients = torch.cat([torch.linspace(0.5, 1.5, len(part)) for part in parts])
    return (table(ids) * coefficients.unsqueeze(1)).sum()


def sparse_sgd(rank: int, world: int) -> dict:
    """SparseSGD's repeat cap under DDP: every rank's rows are counted although gloo's
    all-reduce merges them (2 ranks, or 1 rank in a process group holding both ranks'
    lookups). Without a process group, the reference: both ranks' accumulated lookups in one
    backward pass, one step."""
    from torch.nn.parallel import DistributedDataParallel

    from nslightning.optim import SparseSGD

    torch.manual_seed(0)
    table = torch.nn.Embedding(5, 2, sparse=True)
    if not dist.is_initialized():
        optimizer = SparseSGD(table.parameters(), lr=0.1, max_repeats=2)
        lookups(table, (FIRST, SECOND), [0, 1]).backward()
        optimizer.step()
        return {"weight": table.weight.detach().clone()}
    model = DistributedDataParallel(table)
    optimizer = SparseSGD(model.parameters(), lr=0.1, max_repeats=2)
    ranks = [rank] if world > 1 else [0, 1]
    lookups(model, (STALE,), ranks).backward()
    optimizer.zero_grad()  # the step of that pass is skipped
    with model.no_sync():
        (lookups(model, (FIRST,), ranks) * world).backward()
    (lookups(model, (SECOND,), ranks) * world).backward()  # DDP averages: the sum over ranks
    optimizer.step()
    return {"weight": table.weight.detach().clone()}


GROUPED = {"sparse_sgd"}  # scenarios that start a process group even for one process


def main() -> None:
    scenario, rank, world, port, out = sys.argv[1:6]
    rank_number, world_size = int(rank), int(world)
    grouped = world_size > 1 or scenario in GROUPED
    if grouped:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
        dist.init_process_group(
            "gloo", rank=rank_number, world_size=world_size, timeout=timedelta(seconds=60)
        )
    if scenario == "draws":
        result = draws(rank_number, world_size)
    elif scenario == "fused_merge":
        result = fused_merge(rank_number, world_size)
    elif scenario == "finite_guard":
        result = finite_guard(rank_number, world_size)
    elif scenario in ("sparse_sgd", "sparse_sgd_reference"):
        result = sparse_sgd(rank_number, world_size)
    else:
        raise SystemExit(f"unknown scenario {scenario!r}")
    torch.save(result, os.path.join(out, f"rank{rank_number}.pt"))
    if grouped:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
