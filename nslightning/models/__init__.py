"""Plain torch modules, independent of Lightning."""

from nslightning.models.skipgram import SkipGramEmbeddings

__all__ = ["SkipGramEmbeddings"]
