"""Negative samplers: one interface (``setup``, ``sample``), one file per strategy."""

from nslightning.samplers.alias import build_alias_table, draw_from_alias
from nslightning.samplers.base import Negatives, NegativeSampler, Scorer
from nslightning.samplers.uniform import UniformSampler
from nslightning.samplers.unigram import UnigramSampler

__all__ = [
    "NegativeSampler",
    "Negatives",
    "Scorer",
    "UniformSampler",
    "UnigramSampler",
    "build_alias_table",
    "draw_from_alias",
]
