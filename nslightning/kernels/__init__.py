"""Compiled kernels: the fused skip-gram update (numba on the CPU, Triton on CUDA GPUs)."""

from nslightning.kernels.fused_sgns import fused_sgns_update

__all__ = ["fused_sgns_update"]
