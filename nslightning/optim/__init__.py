"""Optimizers for sparse embedding training."""

from nslightning.optim.sparse_sgd import SparseSGD

__all__ = ["SparseSGD"]
