"""What the tasks and samplers need from ``torch.distributed`` under Lightning's DDP.

Lightning starts the processes and the process group (``--trainer.strategy ddp``); these helpers
only read it, so that every function here is a no-op in a single process.
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.distributed as dist
from pytorch_lightning.utilities import rank_zero_info
from torch import Tensor


class SparseTables(Protocol):
    """Embedding tables that can switch between sparse and dense gradients."""

    @property
    def sparse(self) -> bool: ...

    def use_sparse_gradients(self, sparse: bool) -> None: ...

    def sparse_parameters(self) -> list[Tensor]:
        """The parameters whose gradients are sparse now."""
        ...


def in_process_group() -> bool:
    """Whether a default process group exists (Lightning's DDP starts one, even for one
    process)."""
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    """Processes in the default group (1 without ``torch.distributed``)."""
    return dist.get_world_size() if in_process_group() else 1


def rank() -> int:
    """This process's rank in the default group (0 without ``torch.distributed``)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def sparse_gradients_reducible() -> bool:
    """Whether DDP can all-reduce sparse gradients here: one process, or the gloo backend.

    NCCL has no sparse all-reduce, so on GPUs the embedding tables must produce dense
    gradients under DDP.
    """
    return world_size() == 1 or dist.get_backend() == "gloo"


def keep_gradients_reducible(tables: SparseTables, owner: str, note: str = "") -> None:
    """Switches sparse ``tables`` to dense gradients where DDP cannot all-reduce sparse ones
    (NCCL), with a message from ``owner`` (and ``note``); elsewhere leaves them as they are."""
    if tables.sparse and not sparse_gradients_reducible():
        rank_zero_info(
            f"{owner}: NCCL cannot all-reduce sparse gradients, so the embedding tables use "
            f"dense gradients under DDP{note}."
        )
        tables.use_sparse_gradients(False)


def gather_ids(ids: Tensor) -> tuple[Tensor, int]:
    """Every rank's ``ids``, concatenated in rank order, and where this rank's part starts.

    Ids are integers, so no gradient crosses ranks here: the model's tables are replicated, a
    rank scores gathered ids with its own copy, and DDP's gradient all-reduce brings the
    contributions together. Every rank must pass the same shape (the DataModules serve equal
    batches to every rank).

    Args:
        ids: ``(*)`` long ids, the same shape on every rank.

    Returns:
        ``((world_size * N,), rank * N)`` with ``N = ids.numel()``.

    Raises:
        ValueError: the ranks passed different shapes (checked when the ids are on the CPU,
            where it costs nothing).
    """
    flat = ids.reshape(-1).contiguous()
    size = world_size()
    if size == 1:
        return flat, 0
    if flat.device.type == "cpu":
        count = torch.tensor([flat.numel()], dtype=torch.int64)
        counts = [torch.zeros_like(count) for _ in range(size)]
        dist.all_gather(counts, count)
        numbers = [int(c) for c in counts]
        if len(set(numbers)) > 1:
            raise ValueError(
                f"negatives across ranks need the same number of positives on every rank, got "
                f"{numbers}; use a DataModule that serves equal batches to every rank "
                "(PairDataModule, LanguageModelDataModule) or set across_ranks=False."
            )
    parts = [torch.empty_like(flat) for _ in range(size)]
    dist.all_gather(parts, flat)
    return torch.cat(parts), rank() * flat.numel()


def gather_with_gradients(vectors: Tensor) -> Tensor:
    """Every rank's ``vectors (N, D)``, concatenated in rank order ``(world_size * N, D)``,
    with gradients: the backward sends each rank the sum over ranks of the gradients of its
    own rows. With DDP's gradient mean this gives the gradients of one process holding the
    whole batch, for vectors that come out of a model (a table's rows are rebuilt from
    gathered ids instead, :func:`gather_ids`). ``vectors`` itself in one process.
    """
    if world_size() == 1:
        return vectors
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(vectors.contiguous()))


def max_over_ranks(value: int, device: torch.device) -> int:
    """The largest ``value`` any rank passed (a collective: every rank must call it)."""
    if world_size() == 1:
        return value
    tensor = torch.tensor([value], dtype=torch.int64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return int(tensor.item())


def sum_over_ranks(values: Tensor) -> Tensor:
    """The sum over ranks of ``values`` (the same shape on every rank), on every rank; a copy
    without gradient. ``values`` itself in one process (no process group).
    """
    if not in_process_group():
        return values
    total = values.detach().clone()
    dist.all_reduce(total)
    return total


def mean_over_ranks(value: Tensor) -> Tensor:
    """The mean over ranks of a scalar without gradient (a loss's normalizer), on every rank.

    A loss that divides its local sum by this instead of its local normalizer, averaged by DDP
    over ``W`` ranks, equals the global sum divided by the global normalizer.
    """
    if world_size() == 1:
        return value
    return sum_over_ranks(value) / world_size()
