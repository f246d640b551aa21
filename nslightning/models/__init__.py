"""Plain torch modules, independent of Lightning."""

from nslightning.models.language_model import LSTMLanguageModel
from nslightning.models.pair_embeddings import PairEmbeddings, PairScorer
from nslightning.models.sampled_output import SampledOutput
from nslightning.models.score_calibration import ScoreCalibration
from nslightning.models.scores import PairScore
from nslightning.models.skipgram import SkipGramEmbeddings, WindowScorer

__all__ = [
    "LSTMLanguageModel",
    "PairEmbeddings",
    "PairScore",
    "PairScorer",
    "SampledOutput",
    "ScoreCalibration",
    "SkipGramEmbeddings",
    "WindowScorer",
]
