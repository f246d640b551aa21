"""Plain torch modules, independent of Lightning."""

from nslightning.models.pair_embeddings import PairEmbeddings, PairScorer
from nslightning.models.skipgram import SkipGramEmbeddings, WindowScorer

__all__ = ["PairEmbeddings", "PairScorer", "SkipGramEmbeddings", "WindowScorer"]
