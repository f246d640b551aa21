"""Plain SGD that applies sparse row gradients without coalescing them."""

from __future__ import annotations

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

    Args:
        params: parameters or parameter groups.
        lr: learning rate (word2vec's ``alpha``; 0.025 for skip-gram).
    """

    def __init__(self, params: Iterable[Any], lr: float = 0.025) -> None:
        if not lr > 0:
            raise ValueError(f"SparseSGD lr must be > 0, got {lr}.")
        super().__init__(params, {"lr": lr})

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
                    # Scaling first: index_add_ with `alpha` takes a slower path (4x on CPU).
                    param.index_add_(0, grad._indices()[0], grad._values() * -group["lr"])
                else:
                    param.add_(grad, alpha=-group["lr"])
        return loss
