"""Plain SGD that applies sparse row gradients without coalescing them."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer


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
        super().__init__(params, {"lr": lr})
        self.max_repeats = None if max_repeats == math.inf else max_repeats

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for param in group["params"]:
                grad: Tensor | None = param.grad
                if grad is None:
                    continue
                if grad.is_sparse:
                    rows, values = grad._indices()[0], grad._values()
                    scale = -group["lr"]
                    if self.max_repeats is not None:
                        repeats = self._count_repeats(param, rows)
                        cap = (self.max_repeats / repeats).clamp_(max=1.0)
                        scale = cap.unsqueeze(1).mul_(scale)
                    # Scaling first: index_add_ with `alpha` takes a slower path (4x on CPU).
                    param.index_add_(0, rows, values * scale)
                else:
                    param.add_(grad, alpha=-group["lr"])
        return loss

    def _count_repeats(self, param: Tensor, rows: Tensor) -> Tensor:
        """``(M,)`` how often each of ``rows`` occurs in ``rows``, in O(M) (no sort).

        A per-parameter counter of ``V`` zeros is kept in the optimizer state; the rows are
        counted into it, read back and reset, so no step touches all ``V`` entries.
        """
        state = self.state[param]
        counter = state.get("repeat_counter")
        if counter is None or counter.shape[0] != param.shape[0]:
            counter = torch.zeros(param.shape[0], device=param.device, dtype=torch.float32)
            state["repeat_counter"] = counter
        counter.index_add_(0, rows, torch.ones(rows.shape, device=rows.device))
        repeats = counter[rows]
        counter.index_fill_(0, rows, 0.0)
        return repeats
