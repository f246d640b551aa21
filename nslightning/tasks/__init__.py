"""LightningModules, one per task."""

from nslightning.tasks.contrastive import ContrastiveTask
from nslightning.tasks.skipgram import SkipGramTask

__all__ = ["ContrastiveTask", "SkipGramTask"]
