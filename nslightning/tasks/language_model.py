"""The LSTM language model task: sampled training objectives, full-softmax perplexity."""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor
from torchmetrics.aggregation import MeanMetric

from nslightning.data.contract import NegativeSamplingData
from nslightning.data.token_streams import TokenWindow
from nslightning.data.training_position import training_position
from nslightning.deprecation import warn_renamed
from nslightning.losses.base import NegativeSamplingLoss
from nslightning.models.language_model import Hidden, LSTMLanguageModel, detach_hidden
from nslightning.models.sampled_output import OutputHits, OutputName, SampledOutput, output_loss
from nslightning.samplers.base import NegativeSampler
from nslightning.samplers.log_uniform import LogUniformSampler
from nslightning.tasks.base import NegativeSamplingTask, OptimizerFactory, hits_from_old_flag

BiasInit = Literal["zeros", "log_unigram"]
Stage = Literal["train", "val", "test"]
TRAIN_HIDDEN_KEY = "nslightning_train_hidden"  # the LSTM state between training windows
OLD_SAMPLER_PREFIX = "output.sampler."  # where checkpoints before 0.2 kept the sampler


class LanguageModelTask(NegativeSamplingTask):
    """Trains an :class:`~nslightning.models.LSTMLanguageModel` with any output objective and
    measures it with the exact full softmax.

    A batch is a :class:`~nslightning.data.token_streams.TokenWindow` of ``B`` streams by ``T``
    tokens. The LSTM state is carried from one window to the next and detached (truncated
    back-propagation through time), and reset to zeros at the start of every training,
    validation and test epoch. The training loss is the full softmax or a sampled loss (see
    :class:`~nslightning.models.SampledOutput`); validation and test always compute the exact
    negative log-likelihood under the full softmax over all ``V`` tokens, averaged over tokens
    (a torchmetrics ``MeanMetric``, summed across processes), and log ``val/loss`` and
    ``val/ppl = exp(val/loss)`` (``test/...`` likewise), so objectives compare on one scale.

    Args:
        vocab_size: ``V`` (linked from the DataModule by the CLI).
        dim: ``D``, the input (and tied output) vector size.
        hidden_size: LSTM state size.
        num_layers: LSTM layers.
        dropout: dropout probability.
        tie_weights: output vectors are the input embeddings.
        output: a shorthand for the loss: ``"full"`` (the full softmax, no sampling),
            ``"sampled_softmax"``, ``"negative_sampling"`` or ``"nce"`` (see
            :func:`~nslightning.models.sampled_output.output_loss`); ``None`` with ``loss``.
        loss: a :class:`~nslightning.losses.NegativeSamplingLoss` (instead of ``output``);
            ``SampledSoftmaxLoss()`` when neither is given.
        num_negatives: ``K`` sampled candidates.
        sampler: where candidates come from; ``LogUniformSampler()`` when ``None``.
        shared_negatives: one set of candidates per batch, else per token.
        accidental_hits: ``"positive"`` drops candidates equal to the target, ``"keep"`` keeps
            them; ``None`` for the loss's usual choice (NCE keeps them).
        optimizer: a factory ``params -> Optimizer``; the task sets its learning rate.
        lr: learning rate.
        bias_init: ``"log_unigram"`` starts the output biases at the smoothed log training
            frequencies (the model starts as the unigram model, which helps every objective and
            NCE's self-normalisation most); ``"zeros"`` starts them at 0.
        embedding_dim: deprecated, use ``dim``.
        remove_accidental_hits: deprecated, use ``accidental_hits`` (``True`` is
            ``"positive"``, ``False`` is ``"keep"``).
    """

    items = "tokens"
    data_module = "LanguageModelDataModule"
    fingerprint_mismatch = (
        "the checkpoint was trained with another vocabulary (same size, other tokens or "
        "order): its ids would mean other tokens. Use the vocabulary it was trained with "
        "(--data.vocabulary_path PATH)."
    )

    def __init__(
        self,
        vocab_size: int,
        dim: int = 256,
        hidden_size: int = 256,
        num_layers: int = 2,
        dropout: float = 0.2,
        tie_weights: bool = True,
        output: OutputName | None = None,
        loss: NegativeSamplingLoss | None = None,
        num_negatives: int = 1024,
        sampler: NegativeSampler | None = None,
        shared_negatives: bool = True,
        accidental_hits: OutputHits | None = None,
        optimizer: OptimizerFactory = torch.optim.Adam,
        lr: float = 2e-3,
        bias_init: BiasInit = "log_unigram",
        embedding_dim: int | None = None,
        remove_accidental_hits: bool | None = None,
    ) -> None:
        if bias_init not in ("zeros", "log_unigram"):
            raise ValueError(f"bias_init must be 'zeros' or 'log_unigram', got {bias_init!r}.")
        if embedding_dim is not None:
            warn_renamed("LanguageModelTask", "embedding_dim", "dim")
            dim = embedding_dim
        if remove_accidental_hits is not None:
            accidental_hits = hits_from_old_flag(  # type: ignore[assignment]
                "LanguageModelTask", "remove_accidental_hits", remove_accidental_hits,
                "positive", "positive", "keep",
            )
        if output is not None and loss is not None:
            raise ValueError(
                f"give output (a shorthand) or loss (a loss object), not both: output={output!r} "
                f"and loss={type(loss).__name__}; drop one (--model.output null keeps the loss)."
            )
        if output is not None:
            loss = output_loss(output)
        elif loss is None:
            loss = output_loss("sampled_softmax")
        if loss is not None and sampler is None:
            sampler = LogUniformSampler()
        super().__init__(
            sampler=sampler if loss is not None else None,
            loss=None,  # the output layer holds it (self.output.loss)
            num_negatives=num_negatives,
            optimizer=optimizer,
            lr=lr,
            divergence_fix=(
                f"Lower --model.lr (it is {lr}) or clip the gradients "
                "(--trainer.gradient_clip_val 0.25), and resume from a checkpoint written "
                "before this step if you have one."
            ),
        )
        self.save_hyperparameters(ignore=["sampler", "optimizer", "loss"])
        self.model = LSTMLanguageModel(
            vocab_size, dim, hidden_size, num_layers, dropout, tie_weights
        )
        self.output = SampledOutput(loss, num_negatives, shared_negatives, accidental_hits)
        self.output.check_vocabulary(vocab_size)
        if self.sampler is not None and self.output.loss is not None:
            self.output.check_sampler(self.sampler)
        self.bias_init: BiasInit = bias_init
        self.nll = MeanMetric()
        self._hidden: dict[Stage, Hidden | None] = {"train": None, "val": None, "test": None}
        self._bias_ready = False

    @property
    def vocab_size(self) -> int:
        return self.model.vocab_size

    # --------------------------------------------------------------- set-up
    def setup_data(self, stage: str, data: NegativeSamplingData) -> None:
        if stage == "fit" and not self._bias_ready and self.bias_init == "log_unigram":
            smoothed = data.counts.double() + 1.0
            with torch.no_grad():
                bias = (smoothed / smoothed.sum()).log()
                self.model.output_bias.copy_(bias.to(self.model.output_bias))
        self._bias_ready = True

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        # carried on by a run resumed part-way through an epoch (a new epoch starts afresh)
        hidden = self._hidden["train"]
        mid_epoch = training_position(self._trainer)["steps_done"] > 0
        checkpoint[TRAIN_HIDDEN_KEY] = (
            [h.cpu() for h in hidden] if hidden is not None and mid_epoch else None
        )

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("state_dict", {})
        for key in [key for key in state if key.startswith(OLD_SAMPLER_PREFIX)]:
            value = state.pop(key)
            if self.sampler is not None:  # a full softmax had an unused sampler before 0.2
                state["sampler." + key[len(OLD_SAMPLER_PREFIX):]] = value
        saved_hidden = checkpoint.get(TRAIN_HIDDEN_KEY)
        self._hidden["train"] = None if saved_hidden is None else (saved_hidden[0], saved_hidden[1])
        saved = checkpoint.get("state_dict", {}).get("model.output_bias")
        if saved is not None and saved.shape[0] != self.vocab_size:
            raise ValueError(
                f"vocabulary size mismatch: the checkpoint has {saved.shape[0]} tokens but this "
                f"model and its data have {self.vocab_size}; use the corpus, min_count and "
                "vocabulary the checkpoint was trained with (--data.vocabulary_path PATH)."
            )
        super().on_load_checkpoint(checkpoint)
        self._bias_ready = True

    # --------------------------------------------------------------- TBPTT
    def _features(self, batch: TokenWindow, stage: Stage) -> tuple[Tensor, Tensor]:
        """``(N, D)`` LSTM outputs and ``(N,)`` targets, carrying the stage's state."""
        if not isinstance(batch, TokenWindow):
            raise TypeError(
                f"LanguageModelTask expects TokenWindow batches, got {type(batch).__name__}; "
                "train it with LanguageModelDataModule."
            )
        hidden = self._hidden[stage]
        if hidden is not None and hidden[0].shape[1] != batch.inputs.shape[0]:
            hidden = None  # a loader with another number of streams starts afresh
        if hidden is not None and hidden[0].device != batch.inputs.device:  # from a checkpoint
            hidden = (hidden[0].to(batch.inputs.device), hidden[1].to(batch.inputs.device))
        features, hidden = self.model(batch.inputs, hidden)
        self._hidden[stage] = detach_hidden(hidden)
        return features.reshape(-1, features.shape[-1]), batch.targets.reshape(-1)

    def on_train_epoch_start(self) -> None:
        self._hidden["train"] = None

    def on_validation_epoch_start(self) -> None:
        self._hidden["val"] = None
        self.nll.reset()

    def on_test_epoch_start(self) -> None:
        self._hidden["test"] = None
        self.nll.reset()

    # --------------------------------------------------------------- training
    def training_step(self, batch: TokenWindow, batch_idx: int) -> Tensor:
        features, targets = self._features(batch, "train")
        self.advance_loss(self.output.loss)
        loss = self.output(self.model, features, targets, self.sampler)
        self.finite_guard.check(self, "train/loss", loss, batch_idx)
        self.log("train/loss", loss, prog_bar=True, sync_dist=True)
        self.log_loss_values(self.output.loss)
        return loss * self.backward_scale(self.output.loss)

    # --------------------------------------------------------------- evaluation
    def _evaluate(self, batch: TokenWindow, stage: Stage) -> None:
        features, targets = self._features(batch, stage)
        self.nll.update(self.model.nll(features, targets))

    def _log_perplexity(self, stage: Stage) -> None:
        mean_nll = self.nll.compute()  # token-weighted over every rank's windows
        self.log(f"{stage}/loss", mean_nll, sync_dist=True)  # the same value on every rank
        self.log(f"{stage}/ppl", torch.exp(mean_nll), prog_bar=True, sync_dist=True)
        self.nll.reset()

    def validation_step(self, batch: TokenWindow, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self._log_perplexity("val")

    def test_step(self, batch: TokenWindow, batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._log_perplexity("test")

    # --------------------------------------------------------------- export
    def embedding_tables(self) -> dict[str, Tensor]:
        """``words (V, E)``: the input embeddings, float32 on the CPU."""
        return {"words": self.model.embedding.weight.detach().float().cpu()}
