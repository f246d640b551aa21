"""Callbacks: evaluation, export, the W&B embedding projector and throughput."""

from nslightning.callbacks.document_similarity import (
    LeeDocumentSimilarity,
    lee_correlations,
    lee_judgments,
)
from nslightning.callbacks.embedding_projector import EmbeddingProjector
from nslightning.callbacks.export import Word2VecExport
from nslightning.callbacks.preemption import Preempted, Preemption
from nslightning.callbacks.random_state import GlobalRandomState
from nslightning.callbacks.throughput import Throughput
from nslightning.callbacks.word2vec_format import save_word2vec_format
from nslightning.callbacks.word_vector_evaluation import (
    WordVectorEvaluation,
    evaluate_keyed_vectors,
    nearest_neighbours,
    to_keyed_vectors,
)

__all__ = [
    "EmbeddingProjector",
    "GlobalRandomState",
    "LeeDocumentSimilarity",
    "Preempted",
    "Preemption",
    "Throughput",
    "Word2VecExport",
    "WordVectorEvaluation",
    "evaluate_keyed_vectors",
    "lee_correlations",
    "lee_judgments",
    "nearest_neighbours",
    "save_word2vec_format",
    "to_keyed_vectors",
]
