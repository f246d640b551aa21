"""Word-similarity, analogy and nearest-neighbour evaluation of word vectors."""

from __future__ import annotations

import contextlib
import io
import logging
import math
from collections.abc import Sequence
from typing import Any

import pytorch_lightning as pl
from gensim.models import KeyedVectors
from gensim.test.utils import datapath
from pytorch_lightning.utilities import rank_zero_info
from torch import Tensor

from nslightning.loggers.steps import logging_step

WORD_PAIR_SETS = {"ws353": "wordsim353.tsv", "simlex": "simlex999.txt"}
ANALOGY_SET = "questions-words.txt"
DEFAULT_PROBES = ("king", "france", "computer", "war", "music", "good")


def to_keyed_vectors(tokens: Sequence[str], vectors: Tensor) -> KeyedVectors:
    """gensim ``KeyedVectors`` of ``(V, D)`` vectors keyed by ``tokens``."""
    keyed = KeyedVectors(vector_size=int(vectors.shape[1]))
    keyed.add_vectors(list(tokens), vectors.detach().float().cpu().numpy())
    return keyed


def evaluate_keyed_vectors(
    keyed: KeyedVectors, analogy: bool = True, restrict_vocab: int = 30000
) -> dict[str, float]:
    """Spearman correlation on WordSim353 and SimLex-999 and Google analogy accuracy.

    Uses the files that gensim ships and gensim's own evaluation (pairs with out-of-vocabulary
    words are skipped, as gensim does; the OOV share is returned beside each score).

    Returns:
        ``{"ws353", "ws353_oov", "simlex", "simlex_oov", "analogy"}``; a score is NaN when no
        pair of its set is in the vocabulary.
    """
    results: dict[str, float] = {}
    quiet = logging.getLogger("gensim.models.keyedvectors")
    previous = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        for name, filename in WORD_PAIR_SETS.items():
            try:
                with contextlib.redirect_stderr(io.StringIO()):
                    _, spearman, oov = keyed.evaluate_word_pairs(datapath(filename))
            except ValueError:  # gensim: no pair of the set is in the vocabulary
                results[name], results[f"{name}_oov"] = math.nan, 1.0
                continue
            value = float(spearman.statistic)
            results[name] = value if math.isfinite(value) else math.nan
            results[f"{name}_oov"] = float(oov) / 100.0
        if analogy:
            score, _ = keyed.evaluate_word_analogies(
                datapath(ANALOGY_SET), restrict_vocab=restrict_vocab
            )
            results["analogy"] = float(score)
    finally:
        quiet.setLevel(previous)
    return results


def nearest_neighbours(
    keyed: KeyedVectors, probes: Sequence[str], topn: int = 8
) -> list[tuple[str, str]]:
    """``(probe, "w1 (0.71), w2 (0.69), ...")`` for each probe word in the vocabulary."""
    rows = []
    for word in probes:
        if word in keyed.key_to_index:
            similar = keyed.most_similar(word, topn=topn)
            rows.append((word, ", ".join(f"{w} ({s:.2f})" for w, s in similar)))
    return rows


class WordVectorEvaluation(pl.Callback):
    """Evaluates the task's ``word_vectors()`` at the end of training epochs.

    Logs ``val/ws353``, ``val/simlex`` (Spearman) and ``val/analogy`` (accuracy), and a table of
    nearest neighbours of probe words (a W&B table when the logger is W&B; the console at the end
    of training). A run that stops inside an epoch is evaluated once more at its end.

    Args:
        every_n_epochs: evaluate every this many epochs (and always after the last one).
        analogy: also run the 19,544 Google analogy questions.
        restrict_vocab: analogy search over the most frequent words only (gensim's option).
        probes: words whose nearest neighbours are shown.
        topn: neighbours per probe.
    """

    def __init__(
        self,
        every_n_epochs: int = 1,
        analogy: bool = True,
        restrict_vocab: int = 30000,
        probes: Sequence[str] = DEFAULT_PROBES,
        topn: int = 8,
    ) -> None:
        if every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be >= 1, got {every_n_epochs}.")
        self.every_n_epochs = every_n_epochs
        self.analogy = analogy
        self.restrict_vocab = restrict_vocab
        self.probes = list(probes)
        self.topn = topn
        self.last_results: dict[str, float] = {}
        self._evaluated_at = -1
        self.last_neighbours: list[tuple[str, str]] = []

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        last = trainer.max_epochs is not None and epoch >= trainer.max_epochs
        if epoch % self.every_n_epochs and not last:
            return
        self._evaluate(trainer, pl_module)
        for name, value in self.last_results.items():
            # broadcast from rank 0: the same value on every rank, which the mean keeps
            pl_module.log(
                f"val/{name}", value, prog_bar=name in ("ws353", "simlex"), sync_dist=True
            )

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Stopped inside an epoch (max_steps, max_time): evaluate the final vectors too.
        if self._evaluated_at != trainer.global_step:
            self._evaluate(trainer, pl_module)
            if trainer.logger is not None:
                metrics = {f"val/{name}": value for name, value in self.last_results.items()}
                trainer.logger.log_metrics(metrics, step=logging_step(trainer))

    def _evaluate(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Evaluates on rank 0 only and broadcasts the scores, so that every rank logs the same
        values (``ModelCheckpoint`` and ``EarlyStopping`` read them on every rank)."""
        self._evaluated_at = trainer.global_step
        outcome: tuple[dict[str, float], list[tuple[str, str]]] = ({}, [])
        if trainer.is_global_zero:
            keyed = self._keyed_vectors(trainer, pl_module)
            outcome = (
                evaluate_keyed_vectors(keyed, self.analogy, self.restrict_vocab),
                nearest_neighbours(keyed, self.probes, self.topn),
            )
        self.last_results, self.last_neighbours = trainer.strategy.broadcast(outcome)
        log_table = getattr(trainer.logger, "log_table", None)
        if callable(log_table) and self.last_neighbours:
            log_table(
                key="val/neighbours", columns=["word", "nearest neighbours"],
                data=[list(row) for row in self.last_neighbours],
            )

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.last_results:
            scores = ", ".join(f"{k}={v:.4f}" for k, v in self.last_results.items())
            rank_zero_info(f"Word-vector evaluation: {scores}")
        for word, neighbours in self.last_neighbours:
            rank_zero_info(f"  {word}: {neighbours}")

    @staticmethod
    def _keyed_vectors(trainer: pl.Trainer, pl_module: Any) -> KeyedVectors:
        vocabulary = getattr(getattr(trainer, "datamodule", None), "vocabulary", None)
        if vocabulary is None or not hasattr(pl_module, "word_vectors"):
            raise RuntimeError(
                "WordVectorEvaluation needs a DataModule with a `vocabulary` and a task with "
                "`word_vectors()` (SkipGramDataModule and SkipGramTask)."
            )
        return to_keyed_vectors(vocabulary.tokens, pl_module.word_vectors())
