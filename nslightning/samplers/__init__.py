"""Negative samplers: one interface (``setup``, ``sample``), one file per strategy."""

from nslightning.samplers.alias import build_alias_table, draw_from_alias
from nslightning.samplers.base import (
    Draw,
    DrawRequest,
    LogQKind,
    Negatives,
    NegativeSampler,
    Scorer,
)
from nslightning.samplers.diagnostics import negative_statistics
from nslightning.samplers.hard_negative import HardNegativeSampler
from nslightning.samplers.in_batch import InBatchSampler
from nslightning.samplers.index_hard_negative import IndexHardNegativeSampler
from nslightning.samplers.log_uniform import LogUniformSampler
from nslightning.samplers.loss_inputs import check_compatible, correction_inputs, per_draw_log_q
from nslightning.samplers.memory_bank import MemoryBankSampler
from nslightning.samplers.mixed import MixedSampler
from nslightning.samplers.table import TableSampler
from nslightning.samplers.uniform import UniformSampler
from nslightning.samplers.unigram import UnigramSampler

__all__ = [
    "Draw",
    "DrawRequest",
    "HardNegativeSampler",
    "InBatchSampler",
    "IndexHardNegativeSampler",
    "LogQKind",
    "LogUniformSampler",
    "MemoryBankSampler",
    "MixedSampler",
    "NegativeSampler",
    "Negatives",
    "Scorer",
    "TableSampler",
    "UniformSampler",
    "UnigramSampler",
    "build_alias_table",
    "check_compatible",
    "correction_inputs",
    "draw_from_alias",
    "negative_statistics",
    "per_draw_log_q",
]
