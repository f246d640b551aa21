"""LightningModules, one per task."""

from nslightning.tasks.contrastive import ContrastiveTask
from nslightning.tasks.language_model import LanguageModelTask
from nslightning.tasks.skipgram import SkipGramTask

__all__ = ["ContrastiveTask", "LanguageModelTask", "SkipGramTask"]
