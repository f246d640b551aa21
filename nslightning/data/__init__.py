"""Corpus readers, the vocabulary, DataModules and Keras-compatible preprocessing."""

from nslightning.data.contract import NegativeSamplingData
from nslightning.data.corpus import builtin_corpora, read_lines, read_sentences, resolve_paths
from nslightning.data.keras import make_sampling_table, skipgrams
from nslightning.data.known_positives import KnownPositives
from nslightning.data.language_model_datamodule import LanguageModelDataModule
from nslightning.data.pair_datamodule import PairDataModule
from nslightning.data.pair_files import builtin_relations, read_pairs
from nslightning.data.skipgram_datamodule import SkipGramDataModule
from nslightning.data.skipgram_store import skipgram_store
from nslightning.data.subsampling import keep_probabilities
from nslightning.data.token_store import TokenStore
from nslightning.data.token_streams import TokenStreams, TokenWindow
from nslightning.data.vocabulary import Vocabulary
from nslightning.data.windows import SkipGramBatch, skipgram_windows

__all__ = [
    "KnownPositives",
    "LanguageModelDataModule",
    "NegativeSamplingData",
    "PairDataModule",
    "SkipGramBatch",
    "SkipGramDataModule",
    "TokenStore",
    "TokenStreams",
    "TokenWindow",
    "Vocabulary",
    "builtin_corpora",
    "builtin_relations",
    "keep_probabilities",
    "make_sampling_table",
    "read_lines",
    "read_pairs",
    "read_sentences",
    "resolve_paths",
    "skipgram_store",
    "skipgram_windows",
    "skipgrams",
]
