"""LightningModules, one per task, on one base (:class:`NegativeSamplingTask`)."""

from nslightning.tasks.base import NegativeSamplingTask
from nslightning.tasks.contrastive import ContrastiveTask
from nslightning.tasks.language_model import LanguageModelTask
from nslightning.tasks.skipgram import SkipGramTask

__all__ = ["ContrastiveTask", "LanguageModelTask", "NegativeSamplingTask", "SkipGramTask"]
