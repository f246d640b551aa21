"""LightningModules, one per task."""

from nslightning.tasks.skipgram import SkipGramTask

__all__ = ["SkipGramTask"]
