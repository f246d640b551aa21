"""Plain torch modules, independent of Lightning."""

from nslightning.models.skipgram import SkipGramEmbeddings, WindowScorer

__all__ = ["SkipGramEmbeddings", "WindowScorer"]
