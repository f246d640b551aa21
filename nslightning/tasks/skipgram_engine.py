"""The skip-gram task's engines: which one runs where, and what the fused one needs around it.

- ``autograd``: batched updates of ``update_size`` centers through autograd and an optimizer
  (any optimizer, any loss variant, sampler diagnostics at every update).
- ``fused``: word2vec's per-pair SGD, one compiled kernel per chunk
  (:func:`~nslightning.kernels.fused_sgns_update`: numba threads on the CPU, Triton on CUDA).
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
import torch.distributed as dist
from pytorch_lightning.utilities import rank_zero_info
from torch import Tensor
from torch.optim import Optimizer

from nslightning.distributed import world_size
from nslightning.losses.base import NegativeSamplingLoss
from nslightning.optim.sparse_sgd import SparseSGD

Engine = Literal["auto", "fused", "autograd"]
ENGINES: tuple[str, ...] = get_args(Engine)


def resolve_engine(engine: str, device: torch.device) -> Literal["fused", "autograd"]:
    """The engine that runs on ``device``.

    ``auto`` is ``fused`` on the CPU. On CUDA it stays ``autograd`` until
    ``benchmarks/gpu_check.py`` has verified the Triton kernel's speed and quality on a real
    GPU; ``engine: fused`` opts in before that.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}.")
    if engine == "autograd":
        return "autograd"
    if device.type == "cpu":
        return "fused"
    if device.type == "cuda" and engine == "fused":
        try:
            import triton  # noqa: F401
        except ImportError as error:
            raise RuntimeError(
                "engine: fused on CUDA needs Triton, which comes with PyTorch's CUDA builds "
                "(pip install triton); or use engine: autograd."
            ) from error
        return "fused"
    if engine == "fused":
        raise RuntimeError(
            f"the fused engine runs on CPU and CUDA devices, not {device.type}; use engine: "
            "autograd (or auto) there."
        )
    if device.type == "cuda":
        rank_zero_info(
            "SkipGramTask: engine auto uses autograd on CUDA until the Triton kernel's figures "
            "are taken on a GPU (benchmarks/gpu_check.py); engine: fused opts in."
        )
    return "autograd"


def fused_obstacle(
    optimizer: Optimizer, table_dtype: torch.dtype, precision: object, loss: NegativeSamplingLoss
) -> str | None:
    """Why the fused engine cannot train this set-up, or ``None`` when it can.

    Args:
        optimizer: the task's optimizer (the fused engine only uses it to count steps).
        table_dtype: the embedding tables' dtype.
        precision: the trainer's precision setting (``"32-true"``, ``"16-mixed"``, ...).
        loss: the task's loss; the kernel implements the losses whose ``fused_form`` is
            ``"sgns"``.
    """
    if loss.fused_form != "sgns":
        return (
            f"{type(loss).__name__} has no fused form (the kernel is per-pair SGD of "
            "SGNSLoss); the autograd engine trains any loss"
        )
    plain_sgd = type(optimizer) is torch.optim.SGD and not any(
        optimizer.defaults.get(option) for option in ("momentum", "weight_decay")
    )
    if not (isinstance(optimizer, SparseSGD) or plain_sgd):
        return (
            f"{type(optimizer).__name__} would be ignored, since the fused engine is word2vec's "
            "per-pair SGD and applies the updates itself"
        )
    if table_dtype != torch.float32:
        return f"its kernels train float32 tables and these are {table_dtype}"
    if str(precision).startswith("16"):
        return (
            "16-bit mixed precision steps through a gradient scaler, which needs the gradients "
            "that the fused engine never makes"
        )
    return None


class RankUpdates:
    """Gives every rank's tables the updates of every rank (the fused engine under DDP).

    Each rank trains its own chunks on its own copy of the tables. Every ``every`` chunks, and
    at the end of each epoch, the ranks add up what each of them changed since the last merge
    and apply the sum everywhere: ``w <- w_base + Σ_r (w_r - w_base)``. So every pair's update
    reaches every rank at full size (an average of the tables would shrink each rank's updates
    by the world size), as if the ranks were Hogwild threads of one process that see each
    other's updates ``every`` chunks late.

    Args:
        every: chunks between merges.
    """

    def __init__(self, every: int = 1) -> None:
        if every < 1:
            raise ValueError(f"sync_every must be >= 1 (chunks between merges), got {every}.")
        self.every = every
        self.reset()

    def reset(self) -> None:
        """Forgets the base and the count (a new fit starts from the tables it then has)."""
        self.pending = 0
        self.bases: list[Tensor] | None = None

    def before_chunk(self, tables: list[Tensor]) -> None:
        """Keeps the tables as the base of the next merge, once (all ranks start equal: DDP
        broadcasts rank 0's parameters)."""
        if self.bases is None and world_size() > 1:
            self.bases = [table.detach().clone() for table in tables]

    def after_chunk(self, tables: list[Tensor], merge_now: bool = False) -> bool:
        """Merges every ``every`` chunks, or now (a collective: every rank calls it after every
        chunk, with the same ``merge_now``).

        Returns:
            Whether the tables were merged.
        """
        if self.bases is None:
            return False
        self.pending += 1
        if self.pending < self.every and not merge_now:
            return False
        return self.flush(tables)

    def flush(self, tables: list[Tensor]) -> bool:
        """Merges the changes not merged yet, if any (a collective, like :meth:`after_chunk`).

        Returns:
            Whether the tables were merged.
        """
        if self.bases is None or self.pending == 0:
            return False
        with torch.no_grad():
            for table, base in zip(tables, self.bases, strict=True):
                change = table - base
                dist.all_reduce(change)
                base.add_(change)
                table.copy_(base)
        self.pending = 0
        return True
