"""Plain SGD that applies sparse row gradients without coalescing them."""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from nslightning.distributed import in_process_group, sum_over_ranks


class SparseSGD(Optimizer):
    """Stochastic gradient descent, ``w -= lr * grad``, fast for sparse embedding gradients.

    ``torch.optim.SGD`` coalesces a sparse gradient (a sort) before adding it; the update is a
    sum either way, so this optimizer adds the uncoalesced rows with one ``index_add_``. Dense
    gradients are applied as usual. This is word2vec's update rule (no momentum, no decay).

    word2vec applies each pair's gradient before the next, so a frequent word's updates shrink
    as its scores saturate. One update of many pairs sums them instead, and a row that appears
    hundreds of times (a frequent word as center, context and shared negative) over-steps and
    diverges, e.g. skip-gram without subsampling. ``max_repeats`` bounds that: the contributions
    of a row that appears ``n > max_repeats`` times in one sparse gradient are scaled by
    ``max_repeats / n``; rows that appear less often get the plain sum.

    Under DDP the gradient that reaches the optimizer is the ranks' gradients merged by a
    sparse all-reduce (gloo), which coalesces them: each row once, its contributions summed,
    the same rows on every rank. So that the cap stays that of one process with the whole
    batch, a gradient hook keeps the rows of each rank's own gradient before the merge; at the
    step each rank counts them at the merged rows and one all-reduce sums the counts (the cap
    scales all of a row's contributions alike, so it applies to their sum). Over NCCL the tables
    have dense gradients and no cap applies.

    Args:
        params: parameters or parameter groups.
        lr: learning rate (word2vec's ``alpha``; 0.025 for skip-gram).
        max_repeats: the cap above; ``None`` or infinity (``--model.optimizer.max_repeats .inf``
            on the command line, YAML's spelling) for the plain sum.
    """

    def __init__(
        self, params: Iterable[Any], lr: float = 0.025, max_repeats: float | None = 32.0
    ) -> None:
        if not lr > 0:
            raise ValueError(f"SparseSGD lr must be > 0, got {lr}.")
        if max_repeats is not None and not max_repeats >= 1:
            raise ValueError(f"max_repeats must be >= 1 or None, got {max_repeats}.")
        # rows of each parameter's sparse gradients before DDP merges them (see _remember_rows)
        self._rows_before_merge: dict[Tensor, Tensor] = {}
        super().__init__(params, {"lr": lr})
        self.max_repeats = None if max_repeats == math.inf else max_repeats

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        owner = weakref.ref(self)
        handles = [
            param.register_hook(lambda grad, param=param: _remember_rows(owner, param, grad))
            for param in self.param_groups[-1]["params"] if param.requires_grad
        ]
        # the hooks go with the optimizer (a new fit builds a new one on the same parameters)
        weakref.finalize(self, _remove_hooks, handles)

    def zero_grad(self, set_to_none: bool = True) -> None:
        super().zero_grad(set_to_none)
        self._rows_before_merge.clear()

    def __getstate__(self) -> dict[str, Any]:
        return {**super().__getstate__(), "max_repeats": self.max_repeats}

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._rows_before_merge = {}

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        merged_repeats = self._merged_repeats() if self.max_repeats is not None else {}
        for group in self.param_groups:
            for param in group["params"]:
                grad: Tensor | None = param.grad
                if grad is None:
                    continue
                if grad.is_sparse:
                    rows, values = grad._indices()[0], grad._values()
                    scale = -group["lr"]
                    if self.max_repeats is not None:
                        repeats = merged_repeats.get(param)
                        if repeats is None:
                            repeats = self._count(param, rows, at=rows)
                        cap = (self.max_repeats / repeats).clamp_(max=1.0)
                        scale = cap.unsqueeze(1).mul_(scale)
                    # Scaling first: index_add_ with `alpha` takes a slower path (4x on CPU).
                    param.index_add_(0, rows, values * scale)
                else:
                    param.add_(grad, alpha=-group["lr"])
        return loss

    def _merged_repeats(self) -> dict[Tensor, Tensor]:
        """For each sparse gradient that is DDP's merge of the ranks' gradients (a process
        group exists and the gradient is coalesced: the same rows on every rank): ``(M,)`` how
        often each of its ``M`` rows occurred in all ranks' gradients before the merge. Each
        rank counts its own rows (kept by the hook) there; one all-reduce sums the counts (a
        collective: under DDP every rank steps alike). ``{}`` without a process group."""
        if not in_process_group():
            return {}
        merged = [
            param for group in self.param_groups for param in group["params"]
            if param.grad is not None and param.grad.is_sparse and param.grad.is_coalesced()
        ]
        if not merged:
            return {}
        local = []
        for param in merged:
            rows = param.grad._indices()[0]
            own = self._rows_before_merge.pop(param, rows[:0])
            local.append(self._count(param, own, at=rows))
        totals = sum_over_ranks(torch.cat(local)).split([len(count) for count in local])
        return dict(zip(merged, totals, strict=True))

    def _count(self, param: Tensor, rows: Tensor, at: Tensor) -> Tensor:
        """``(M,)`` how often each of the ``M`` rows ``at`` occurs in ``rows``, in O(M + R)
        (no sort).

        A per-parameter counter of ``V`` zeros is kept in the optimizer state; ``rows`` are
        counted into it, read at ``at`` and reset, so no step touches all ``V`` entries.

        Args:
            param: ``(V, D)`` the parameter.
            rows: ``(R,)`` the rows to count.
            at: ``(M,)`` where to read the counts.
        """
        state = self.state[param]
        counter = state.get("repeat_counter")
        if counter is None or counter.shape[0] != param.shape[0]:
            counter = torch.zeros(param.shape[0], device=param.device, dtype=torch.float32)
            state["repeat_counter"] = counter
        counter.index_add_(0, rows, torch.ones(rows.shape, device=rows.device))
        repeats = counter[at]
        counter.index_fill_(0, rows, 0.0)
        return repeats


def _remove_hooks(handles: list[Any]) -> None:
    for handle in handles:
        handle.remove()


def _remember_rows(owner: weakref.ref[SparseSGD], param: Tensor, grad: Tensor) -> None:
    """A gradient hook: under DDP keeps the ``(R,)`` rows of ``param``'s sparse gradient on
    this rank, before DDP's all-reduce merges the ranks' gradients (several backward passes
    before a step add up). Does nothing without a process group or a cap, or once the optimizer
    is gone."""
    optimizer = owner()
    if optimizer is None or optimizer.max_repeats is None or not grad.is_sparse:
        return
    if not in_process_group():
        return
    rows = grad._indices()[0]
    kept = optimizer._rows_before_merge.get(param)
    optimizer._rows_before_merge[param] = rows if kept is None else torch.cat([kept, rows])
