"""The training loss of a language model's output layer: the full softmax or a sampled one."""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import Tensor, nn

from nslightning.losses.base import NegativeSamplingLoss
from nslightning.losses.sampled_output import NCELoss, SampledSoftmaxLoss
from nslightning.losses.sgns import SGNSLoss
from nslightning.models.language_model import LSTMLanguageModel
from nslightning.samplers.base import NegativeSampler
from nslightning.samplers.loss_inputs import check_compatible, correction_inputs

OutputName = Literal["full", "sampled_softmax", "negative_sampling", "nce"]
"""Shorthands of the output layer's loss: ``full`` (no sampling) or a sampled loss class."""
OutputHits = Literal["keep", "positive"]


def output_loss(name: OutputName) -> NegativeSamplingLoss | None:
    """The loss a shorthand stands for (``None`` for the full softmax).

    ``sampled_softmax`` is :class:`~nslightning.losses.SampledSoftmaxLoss`,
    ``negative_sampling`` :class:`~nslightning.losses.SGNSLoss` and ``nce``
    :class:`~nslightning.losses.NCELoss`, each with its defaults.
    """
    if name not in get_args(OutputName):
        raise ValueError(
            f"output must be one of {', '.join(get_args(OutputName))}, got {name!r}; or "
            "give a loss object (--model.loss)."
        )
    losses: dict[str, type[NegativeSamplingLoss]] = {
        "sampled_softmax": SampledSoftmaxLoss, "negative_sampling": SGNSLoss, "nce": NCELoss,
    }
    return None if name == "full" else losses[name]()


class SampledOutput(nn.Module):
    """A language model's training loss over its output layer, full or sampled.

    - ``loss=None`` (``"full"``): cross-entropy over all ``V`` tokens; no sampler.
    - a :class:`~nslightning.losses.NegativeSamplingLoss`: the true token's score against
      ``K`` sampled candidates' scores. The loss gets ``log_q`` per draw and, when the sampler
      has a fixed distribution, the true token's ``pos_log_q``: sampled softmax corrects both
      with ``log(K q)`` (Jean et al. 2015; TensorFlow's ``sampled_softmax_loss``), NCE uses
      them as its noise model, negative sampling ignores them.

    Candidates are shared by every token of the batch (one ``(N, D) x (D, K)`` product, as
    TensorFlow's sampled losses do; samplers with a ``fixed_distribution`` only) or drawn per
    token (``N K D`` memory; any sampler that needs no scorer).

    Args:
        loss: the loss, or a shorthand: ``"full"``, ``"sampled_softmax"``,
            ``"negative_sampling"`` or ``"nce"`` (:func:`output_loss`).
        num_negatives: ``K`` candidates.
        shared_negatives: one set of ``K`` candidates per batch, else ``K`` per token.
        accidental_hits: ``"positive"`` drops candidates equal to the token's target,
            ``"keep"`` keeps them (samplers that are not batch-based only); ``None`` for the
            loss's usual choice (``keep`` for losses with ``keeps_accidental_hits``, NCE).
    """

    def __init__(
        self,
        loss: NegativeSamplingLoss | OutputName | None = "sampled_softmax",
        num_negatives: int = 1024,
        shared_negatives: bool = True,
        accidental_hits: OutputHits | None = None,
    ) -> None:
        super().__init__()
        if isinstance(num_negatives, bool) or not isinstance(num_negatives, int):
            raise TypeError(f"num_negatives must be an int, got {num_negatives!r}.")
        if not isinstance(shared_negatives, bool):  # SampledOutput(loss, K, sampler) before 0.2
            raise TypeError(
                f"shared_negatives must be a bool, got {type(shared_negatives).__name__}; the "
                "sampler is no longer an argument of SampledOutput: pass it to the call, "
                "output(model, features, targets, sampler)."
            )
        if num_negatives < 1:
            raise ValueError(f"num_negatives must be >= 1, got {num_negatives}; use K >= 1.")
        self.loss = output_loss(loss) if isinstance(loss, str) else loss
        if accidental_hits is None:
            keeps = self.loss is not None and self.loss.keeps_accidental_hits
            accidental_hits = "keep" if keeps else "positive"
        if accidental_hits not in get_args(OutputHits):
            raise ValueError(
                f"a language model's accidental_hits is 'positive' or 'keep', got "
                f"{accidental_hits!r}."
            )
        self.num_negatives = num_negatives
        self.shared_negatives = shared_negatives
        self.accidental_hits: OutputHits = accidental_hits

    @property
    def sampled(self) -> bool:
        """Whether training samples candidates (``False`` for the full softmax)."""
        return self.loss is not None

    def check_sampler(self, sampler: NegativeSampler) -> None:
        """Refuses a sampler that cannot serve this output layer or its loss, from their
        declared capabilities (:func:`~nslightning.samplers.loss_inputs.check_compatible`).

        Raises:
            ValueError: naming the sampler and the fix.
        """
        name = type(sampler).__name__
        if sampler.needs_scorer:
            raise ValueError(
                f"{name} mines candidates by their scores for anchor ids, but a language model's "
                "contexts are LSTM states, not ids; use a log-uniform, unigram, uniform or "
                "in-batch sampler."
            )
        if self.loss is not None:
            check_compatible(sampler, self.loss)
        if self.shared_negatives and not sampler.fixed_distribution:
            raise ValueError(
                f"shared candidates are drawn once from one distribution over the vocabulary, "
                f"which {name} (with these options) does not have; set --model.shared_negatives "
                "false (candidates per token) or use a log-uniform, unigram or uniform sampler "
                "without unique or redraw."
            )
        if self.accidental_hits == "keep" and sampler.batch_based:
            raise ValueError(
                f"accidental_hits keep needs a sampler that draws from the vocabulary: {name}'s "
                "mask also marks empty slots, which cannot be kept."
            )

    def check_vocabulary(self, vocab_size: int) -> None:
        """Raises ``ValueError`` when ``K`` is not below the vocabulary size."""
        if self.sampled and self.num_negatives >= vocab_size:
            raise ValueError(
                f"num_negatives={self.num_negatives} is not below the vocabulary size "
                f"{vocab_size}: sampling saves nothing there; lower num_negatives or use "
                "--model.output full."
            )

    def forward(
        self,
        model: LSTMLanguageModel,
        features: Tensor,
        targets: Tensor,
        sampler: NegativeSampler | None = None,
    ) -> Tensor:
        """The training loss over the tokens.

        Args:
            model: gives the scores (its output vectors and biases).
            features: ``(N, D)`` LSTM outputs.
            targets: ``(N,)`` long next tokens.
            sampler: draws the candidates (set up over the vocabulary); unused by the full
                softmax.

        Returns:
            A scalar.
        """
        if self.loss is None:
            return torch.nn.functional.cross_entropy(model.logits(features), targets)
        if sampler is None:
            raise ValueError(f"{type(self.loss).__name__} needs a sampler for its candidates.")
        self.check_sampler(sampler)  # attribute reads: a few microseconds
        keep = self.accidental_hits == "keep"
        if self.shared_negatives:
            drawn = sampler.sample(targets[:1], self.num_negatives)
            ids = drawn.ids[0]
            mask = None if keep else ids.unsqueeze(0) != targets.unsqueeze(1)  # (N, K)
        else:
            drawn = sampler.sample(targets, self.num_negatives)
            ids = drawn.ids
            mask = None if keep else drawn.mask  # table samplers mark nothing but the hits
        log_q, pos_log_q = (None, None)
        if self.loss.uses_log_q:
            log_q, pos_log_q = correction_inputs(sampler, drawn, targets)
        pos_scores = model.output_bias[targets] + (
            features * model.output_weight[targets]
        ).sum(-1)
        neg_scores = model.score(features, ids)
        return self.loss(pos_scores, neg_scores, neg_mask=mask, log_q=log_q, pos_log_q=pos_log_q)

    def extra_repr(self) -> str:
        if self.loss is None:
            return "loss=full"
        return (
            f"num_negatives={self.num_negatives}, shared_negatives={self.shared_negatives}, "
            f"accidental_hits={self.accidental_hits}"
        )
