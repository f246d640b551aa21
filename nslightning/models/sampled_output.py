"""The training objective of a language model's output layer: full or sampled."""

from __future__ import annotations

import math
from typing import Literal, get_args

import torch
from torch import Tensor, nn

from nslightning.losses.functional import sgns_loss
from nslightning.losses.sampled_output import nce_loss, sampled_softmax_loss
from nslightning.models.language_model import LSTMLanguageModel
from nslightning.samplers.base import NegativeSampler
from nslightning.samplers.hard_negative import HardNegativeSampler
from nslightning.samplers.log_uniform import LogUniformSampler
from nslightning.samplers.table import TableSampler

Objective = Literal["full", "sampled_softmax", "negative_sampling", "nce"]


class SampledOutput(nn.Module):
    """Computes a language model's training loss with one switch, ``objective``.

    - ``full``: cross-entropy over all ``V`` tokens (no sampler).
    - ``sampled_softmax``: a softmax over the true token and ``K`` sampled candidates with the
      logQ correction ``-log(K q)`` and accidental hits removed (Jean et al. 2015; TensorFlow's
      ``sampled_softmax_loss``), see
      :func:`~nslightning.losses.sampled_output.sampled_softmax_loss`. The true token is
      corrected too when the sampler has a fixed distribution (a table sampler); batch-based
      samplers (in-batch, memory bank) correct only the candidates.
    - ``negative_sampling``: word2vec's logistic objective ``-log σ(s_t) - Σ log σ(-s_k)``,
      accidental hits removed; its scores are not normalised.
    - ``nce``: noise-contrastive estimation with logits ``s - log(K q)``, see
      :func:`~nslightning.losses.sampled_output.nce_loss`; it needs a fixed noise distribution
      (a table sampler) and keeps accidental hits, as NCE's derivation does.

    Candidates are shared by every token of the batch (one ``(N, D) x (D, K)`` product, as
    TensorFlow's sampled losses do; table samplers only) or drawn per token (``N K D`` memory;
    any sampler with ``log_q``).

    Args:
        objective: ``"full"``, ``"sampled_softmax"``, ``"negative_sampling"`` or ``"nce"``.
        num_negatives: ``K`` candidates.
        sampler: where candidates come from; ``LogUniformSampler()`` (Zipf over frequency-sorted
            ids) when ``None``.
        shared_negatives: one set of ``K`` candidates per batch, else ``K`` per token.
        remove_accidental_hits: drop candidates equal to the token's target; ``None`` means the
            objective's usual choice (removed, except for ``nce``).
    """

    def __init__(
        self,
        objective: Objective = "sampled_softmax",
        num_negatives: int = 1024,
        sampler: NegativeSampler | None = None,
        shared_negatives: bool = True,
        remove_accidental_hits: bool | None = None,
    ) -> None:
        super().__init__()
        if objective not in get_args(Objective):
            raise ValueError(
                f"output must be one of {', '.join(get_args(Objective))}, got {objective!r}."
            )
        if isinstance(num_negatives, bool) or not isinstance(num_negatives, int):
            raise TypeError(f"num_negatives must be an int, got {num_negatives!r}.")
        if num_negatives < 1:
            raise ValueError(f"num_negatives must be >= 1, got {num_negatives}; use K >= 1.")
        self.objective: Objective = objective
        self.num_negatives = num_negatives
        self.shared_negatives = shared_negatives
        self.remove_accidental_hits = (
            objective != "nce" if remove_accidental_hits is None else remove_accidental_hits
        )
        self.sampler = sampler if sampler is not None else LogUniformSampler()
        if objective != "full":
            self._check_sampler()

    @property
    def fixed_distribution(self) -> bool:
        """The sampler draws from one distribution over the vocabulary (a table sampler)."""
        return isinstance(self.sampler, TableSampler)

    def _check_sampler(self) -> None:
        name = type(self.sampler).__name__
        if isinstance(self.sampler, HardNegativeSampler):
            raise ValueError(
                f"{name} mines candidates by their scores for anchor ids, but a language model's "
                "contexts are LSTM states, not ids; use a log-uniform, unigram, uniform or "
                "in-batch sampler."
            )
        if isinstance(self.sampler, TableSampler) and (self.sampler.unique or self.sampler.redraw):
            raise ValueError(
                f"{name}(unique=True or redraw=True) changes what log_q means (an inclusion or "
                "renormalised probability), but the output layer's logQ correction needs the "
                "per-draw probability: set unique and redraw to false (accidental hits are "
                "removed by masking, as Jean et al. and TensorFlow do)."
            )
        if not self.fixed_distribution:
            if self.objective == "nce":
                raise ValueError(
                    f"nce needs a fixed noise distribution q (its logits are s - log(K q)), but "
                    f"{name} is not one table over the vocabulary; use a log-uniform, unigram or "
                    "uniform sampler."
                )
            if self.shared_negatives:
                raise ValueError(
                    f"shared candidates are drawn once from one table over the vocabulary, which "
                    f"{name} is not; set --model.shared_negatives false (candidates per token) "
                    "or use a log-uniform, unigram or uniform sampler."
                )
            if not self.remove_accidental_hits:
                raise ValueError(
                    f"remove_accidental_hits=False needs a table sampler: {name}'s mask also "
                    "marks empty slots, which cannot be kept."
                )

    def check_vocabulary(self, vocab_size: int) -> None:
        """Raises ``ValueError`` when ``K`` is not below the vocabulary size."""
        if self.objective != "full" and self.num_negatives >= vocab_size:
            raise ValueError(
                f"num_negatives={self.num_negatives} is not below the vocabulary size "
                f"{vocab_size}: sampling saves nothing there; lower num_negatives or use "
                "--model.output full."
            )

    def forward(self, model: LSTMLanguageModel, features: Tensor, targets: Tensor) -> Tensor:
        """The mean training loss over the tokens.

        Args:
            model: gives the scores (its output vectors and biases).
            features: ``(N, D)`` LSTM outputs.
            targets: ``(N,)`` long next tokens.

        Returns:
            A scalar.
        """
        if self.objective == "full":
            return torch.nn.functional.cross_entropy(model.logits(features), targets)
        if self.shared_negatives:
            drawn = self.sampler.sample(targets[:1], self.num_negatives)
            ids, log_q = drawn.ids[0], drawn.log_q
            candidates = ids.unsqueeze(0)  # (1, K) against every row
            mask = candidates != targets.unsqueeze(1) if self.remove_accidental_hits else None
        else:
            drawn = self.sampler.sample(targets, self.num_negatives)
            ids, log_q, candidates = drawn.ids, drawn.log_q, drawn.ids
            mask = drawn.mask
            if not self.remove_accidental_hits:
                mask = None  # table samplers mark nothing but the hits
        pos_scores = model.output_bias[targets] + (
            features * model.output_weight[targets]
        ).sum(-1)
        neg_scores = model.score(features, ids)
        if self.objective == "negative_sampling":
            return sgns_loss(pos_scores, neg_scores, mask)
        if log_q is None:
            raise ValueError(
                f"{type(self.sampler).__name__} gives no log_q, which {self.objective} needs."
            )
        log_draws = math.log(candidates.shape[-1])
        neg_log_count = log_q + log_draws
        pos_log_count = None
        if self.fixed_distribution:
            pos_log_q = self.sampler.log_prob(targets.unsqueeze(1), targets)
            assert pos_log_q is not None  # table samplers have a closed form
            pos_log_count = pos_log_q.squeeze(1) + log_draws
        if self.objective == "nce":
            assert pos_log_count is not None  # nce is checked to have a table sampler
            return nce_loss(pos_scores, neg_scores, neg_log_count, pos_log_count, neg_mask=mask)
        return sampled_softmax_loss(
            pos_scores, neg_scores, neg_log_count, pos_log_count=pos_log_count, neg_mask=mask
        )

    def extra_repr(self) -> str:
        if self.objective == "full":
            return "objective=full"
        return (
            f"objective={self.objective}, num_negatives={self.num_negatives}, "
            f"shared_negatives={self.shared_negatives}, "
            f"remove_accidental_hits={self.remove_accidental_hits}"
        )
