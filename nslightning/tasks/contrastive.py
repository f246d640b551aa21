"""The weighted contrastive task: embeddings of a two-sided relation trained with negatives."""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, NamedTuple, Protocol

import torch
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from nslightning.data.contract import NegativeSamplingData, missing_members
from nslightning.data.known_positives import KnownPositives
from nslightning.distributed import SparseTables, gather_with_gradients, mean_over_ranks
from nslightning.losses.base import NegativeSamplingLoss
from nslightning.losses.contrastive import WeightedContrastiveLoss
from nslightning.metrics.ranking import FilteredRanking
from nslightning.models.pair_embeddings import PairEmbeddings, PairScorer
from nslightning.models.score_calibration import ScoreCalibration
from nslightning.models.scores import HYPERBOLIC_SCORES, ScoreName
from nslightning.samplers.base import Negatives, NegativeSampler
from nslightning.samplers.unigram import UnigramSampler
from nslightning.tasks.base import (
    AccidentalHits,
    NegativeSamplingTask,
    OptimizerFactory,
    check_accidental_hits,
    hits_from_old_flag,
)


class PairData(NegativeSamplingData, Protocol):
    """What the contrastive task reads from its DataModule beyond
    :class:`~nslightning.data.NegativeSamplingData` (``PairDataModule`` has it all)."""

    @property
    def num_anchors(self) -> int: ...

    @property
    def train_known(self) -> KnownPositives: ...

    @property
    def shared_vocabulary(self) -> bool: ...


class PairStep(NamedTuple):
    """One training batch of the contrastive task.

    Attributes:
        loss: the scalar loss.
        negatives: the draw, its ``mask`` with known positives (and the anchor) removed.
        scores: ``(B, 1 + K)`` the positive's score, then the negatives'.
        exclude: ``(B, C)`` the known positives given to the sampler, or ``None``.
    """

    loss: Tensor
    negatives: Negatives
    scores: Tensor
    exclude: Tensor | None


class ContrastiveTask(NegativeSamplingTask):
    """Learns anchor and item vectors ``μ̂_φ(ids)`` from positive pairs and sampled negatives.

    Each side has an encoder (:class:`~nslightning.models.PairEmbeddings`): an embedding
    table by default, a :class:`~nslightning.models.encoders.BagOfFeatures`, or any module
    that maps ids to vectors. Samplers draw item ids; hard-negative scorers, evaluation and
    export encode items without gradient, in chunks (every item once per validation).

    A training batch holds ``B`` positive pairs ``(anchor, item[, weight])``. The sampler draws
    ``K`` negatives per pair in place of the item (it gets the items as positives, the anchors,
    a :class:`~nslightning.models.PairScorer` for hard negatives, and up to ``max_exclude`` of
    the anchor's known positives as ``exclude``). With ``accidental_hits="known"`` a negative
    that is a known (training) positive of its anchor is masked out of the loss, and
    hard-negative mining scores known positives ``-inf``: the loss never pushes a true pair
    apart. The loss gets ``(pos_scores (B,), neg_scores (B, K), neg_mask, log_q, weights)``.

    Scores that are distances (``euclidean``, ``poincare``, ``lorentz``) are calibrated for
    pointwise losses by default: the loss gets ``(s + b) / t`` with a learned offset ``b``
    (:class:`~nslightning.models.ScoreCalibration`); without it ``-d <= 0`` can never make a
    positive probable. Rankings use the raw scores (the calibration keeps their order).

    Under DDP each rank takes its own equal share of the pairs and draws its own negatives
    (``seed + rank``); samplers with ``across_ranks`` draw from the global batch. With a table
    the other ranks' in-batch candidates are scored from their ids (the table is replicated);
    with any other item encoder each rank encodes its own positives and the vectors are
    gathered with their gradients. The loss's means divide by the global batch's totals, so the
    gradients equal those of one process with the whole batch. Over NCCL (no sparse
    all-reduce) ``sparse`` tables switch to dense gradients.

    Validation ranks every item for each evaluated anchor (filtered ranks, see
    :class:`~nslightning.metrics.FilteredRanking`) and logs ``val/mrr``, ``val/mean_rank``,
    ``val/map`` and ``val/hits@k``.

    Args:
        vocab_size: number of items ``V`` (linked from the DataModule by the CLI).
        num_anchors: number of anchors (linked too); ``None`` means the items' id space.
        dim: vector size ``D``.
        shared_embeddings: one encoder for anchors and items (needs one id space).
        score: ``"dot"``, ``"cosine"``, ``"euclidean"`` (negative distance), ``"poincare"`` or
            ``"lorentz"`` (negative hyperbolic distance, Nickel & Kiela 2017 and 2018; trained
            by a Riemannian optimizer).
        num_negatives: ``K`` per pair; below ``V`` unless the sampler draws from the batch
            (in-batch), else the task refuses it.
        sampler: where negatives come from; ``UnigramSampler(power=0.75)`` over the items'
            training frequencies when ``None``.
        loss: a :class:`~nslightning.losses.NegativeSamplingLoss`;
            ``WeightedContrastiveLoss(lam=1.0)`` when ``None``.
        optimizer: a factory ``params -> Optimizer``; the task sets its learning rate. By
            default Adam, and geoopt's ``RiemannianAdam`` with a hyperbolic score (which
            needs a ``geoopt.optim`` optimizer).
        lr: learning rate.
        accidental_hits: ``"known"`` masks negatives that are known positives of their anchor;
            ``"positive"`` masks only the pair's own item.
        max_exclude: how many of an anchor's known positives the sampler gets as ``exclude``
            (samplers with ``redraw`` draw those again instead of wasting the slot); 0 for none.
        init_scale: table vectors start uniform in ``[-init_scale, init_scale)``.
        sparse: sparse gradients for the tables (use SGD, SparseAdam or Adagrad).
        anchor_encoder: the anchors' encoder (any ``nn.Module`` from ids to vectors, see
            ``docs/encoders.md``); an embedding table when ``None``.
        item_encoder: the items' encoder; a table (or the anchor encoder when
            ``shared_embeddings``) when ``None``.
        calibrate: give the loss calibrated scores ``(s + b) / t``; ``None`` does it where
            the score is a distance and the loss is pointwise (``loss.pointwise``: the
            λ-weighted loss, SGNS, NCE).
        calibration_temperature: the calibration's fixed ``t``, or ``None`` to learn it.
        burn_in_epochs: the first epochs train at ``lr * burn_in_lr_factor`` (Nickel & Kiela
            2017's burn-in, which lets hyperbolic embeddings find their angular layout before
            they move outward).
        burn_in_lr_factor: the learning-rate factor of the burn-in.
        ranking_ks: the ``k`` of ``val/hits@k``.
        diagnostics_every: log ``sampler/...`` diagnostics every this many steps; 0 for never.
        filter_known: deprecated, use ``accidental_hits`` (``True`` is ``"known"``).
    """

    data_module = "PairDataModule"
    fingerprint_mismatch = (
        "the checkpoint was trained on another relation (same sizes, other ids or order): "
        "its rows would mean other anchors or items. Train on the relation the checkpoint "
        "was made from, or start a new model."
    )
    sparse_optimizers = (torch.optim.SGD, torch.optim.Adagrad, torch.optim.SparseAdam)
    dense_parameters_fix = (
        "the score calibration and encoders that are not tables train densely: use Adam or "
        "Adagrad, or --model.calibrate false if the calibration is the only one"
    )

    def __init__(
        self,
        vocab_size: int,
        num_anchors: int | None = None,
        dim: int = 64,
        shared_embeddings: bool = False,
        score: ScoreName = "dot",
        num_negatives: int = 10,
        sampler: NegativeSampler | None = None,
        loss: NegativeSamplingLoss | None = None,
        optimizer: OptimizerFactory | None = None,
        lr: float = 0.01,
        accidental_hits: AccidentalHits = "known",
        max_exclude: int = 32,
        init_scale: float = 0.1,
        sparse: bool = False,
        ranking_ks: Sequence[int] = (1, 3, 10),
        diagnostics_every: int = 100,
        anchor_encoder: nn.Module | None = None,
        item_encoder: nn.Module | None = None,
        calibrate: bool | None = None,
        calibration_temperature: float | None = 1.0,
        burn_in_epochs: int = 0,
        burn_in_lr_factor: float = 0.1,
        filter_known: bool | None = None,
    ) -> None:
        if max_exclude < 0:
            raise ValueError(f"max_exclude must be >= 0, got {max_exclude}.")
        if burn_in_epochs < 0:
            raise ValueError(f"burn_in_epochs must be >= 0, got {burn_in_epochs}.")
        if not 0 < burn_in_lr_factor <= 1:
            raise ValueError(f"burn_in_lr_factor must be in (0, 1], got {burn_in_lr_factor}.")
        if calibration_temperature is not None and not (
            math.isfinite(calibration_temperature) and calibration_temperature > 0
        ):
            raise ValueError(
                "calibration_temperature must be a finite number > 0 (or null to learn it), got "
                f"{calibration_temperature}."
            )
        accidental_hits = hits_from_old_flag(  # type: ignore[assignment]
            "ContrastiveTask", "filter_known", filter_known, accidental_hits, "known", "positive"
        )
        check_accidental_hits(accidental_hits, ("positive", "known"), "ContrastiveTask")
        super().__init__(
            sampler=sampler if sampler is not None else UnigramSampler(power=0.75),
            loss=loss if loss is not None else WeightedContrastiveLoss(),
            num_negatives=num_negatives,
            optimizer=optimizer if optimizer is not None else default_optimizer(score),
            lr=lr,
            diagnostics_every=diagnostics_every,
            divergence_fix=(
                f"Lower --model.lr (it is {lr}) or use a bounded score (--model.score cosine), "
                "and resume from a checkpoint written before this step if you have one."
            ),
        )
        self.save_hyperparameters(
            ignore=["sampler", "loss", "optimizer", "anchor_encoder", "item_encoder"]
        )
        self.embeddings = PairEmbeddings(
            num_anchors if num_anchors is not None else vocab_size,
            vocab_size,
            dim,
            shared=shared_embeddings,
            score=score,
            init_scale=init_scale,
            sparse=sparse,
            anchor_encoder=anchor_encoder,
            item_encoder=item_encoder,
        )
        if calibrate is None:
            calibrate = self.embeddings.geometry.is_distance and self.loss.pointwise
        self.calibration = (
            ScoreCalibration(temperature=calibration_temperature) if calibrate else None
        )
        self.burn_in_epochs = burn_in_epochs
        self.burn_in_lr_factor = burn_in_lr_factor
        self.check_negatives_below_vocabulary(
            "number of items",
            ", lower --data.min_count to keep more items, or use every other positive of the "
            "batch (InBatchSampler with all_others: true)",
        )
        self.loss.check_score(score)
        self.accidental_hits: AccidentalHits = accidental_hits
        self.max_exclude = max_exclude
        self.ranking = FilteredRanking(ranking_ks)
        self.known: KnownPositives | None = None
        self.mask_self = False
        self.item_points: Tensor | None = None

    # the task's sampler and loss always exist (defaults above)
    sampler: NegativeSampler
    loss: NegativeSamplingLoss

    @property
    def vocab_size(self) -> int:
        return self.embeddings.vocab_size

    def sparse_tables(self) -> list[SparseTables]:
        return [self.embeddings]

    # --------------------------------------------------------------- set-up
    def size_mismatch(self, data: NegativeSamplingData) -> str | None:
        pairs = pair_data(data)
        sizes = (pairs.num_anchors, pairs.vocab_size)
        if sizes == (self.embeddings.num_anchors, self.embeddings.vocab_size):
            return None
        return (
            f"size mismatch: the model has {self.embeddings.num_anchors} anchors and "
            f"{self.embeddings.vocab_size} items but the data has {sizes[0]} and {sizes[1]}; "
            "use the relation (and min_count) the checkpoint was trained on, or start a new "
            "model."
        )

    def setup_data(self, stage: str, data: NegativeSamplingData) -> None:
        pairs = pair_data(data)
        if self.trainer.world_size > 1:
            self.loss.reduce_total = mean_over_ranks
        one_id_space = bool(pairs.shared_vocabulary)
        if self.embeddings.shared and not one_id_space:
            raise ValueError(
                "shared_embeddings needs one id space (row i is then both anchor i and item i): "
                "set --data.shared_vocabulary true, or --model.shared_embeddings false."
            )
        self.mask_self = one_id_space
        self.bind_encoders(data)
        # Its own copy: moving the task to the accelerator must not move the DataModule's set,
        # which evaluation chunks are read from on the host.
        self.known = copy.deepcopy(pairs.train_known)

    def bind_encoders(self, data: NegativeSamplingData) -> None:
        """Gives each encoder with a ``bind(names)`` its side's vocabulary (names by id)."""
        vocabularies = data.vocabularies()
        sides = (("anchors", self.embeddings.anchor_encoder),
                 ("items", self.embeddings.item_encoder))
        for side, encoder in sides:
            bind = getattr(encoder, "bind", None)
            if callable(bind) and side in vocabularies:
                bind(vocabularies[side].tokens)

    # --------------------------------------------------------------- training
    def batch_loss(self, batch: dict[str, Tensor]) -> PairStep:
        """The loss of a training batch ``{"anchors" (B,), "items" (B,)[, "weights" (B,)]}``,
        with what the diagnostics need."""
        anchors, items = batch["anchors"], batch["items"]
        weights = batch.get("weights")
        known = self.known if self.accidental_hits == "known" else None
        exclude = None
        if known is not None and self.max_exclude > 0:
            exclude = known.padded(anchors, min(self.max_exclude, max(known.max_degree, 1)))
        scorer = PairScorer(self.embeddings, known.contains if known is not None else None)
        negatives = self.sampler.sample(
            items, self.num_negatives, anchors=anchors, scorer=scorer, exclude=exclude
        )
        mask = negatives.mask
        if known is not None:
            mask = mask & ~known.contains(anchors.unsqueeze(1), negatives.ids)
        if self.mask_self:  # in one id space the anchor is not a candidate (as in evaluation)
            mask = mask & (negatives.ids != anchors.unsqueeze(1))
        scores = self.pair_scores(anchors, items, negatives)  # (B, 1 + K)
        logits = self.calibration(scores) if self.calibration is not None else scores
        self.advance_loss()
        log_q, pos_log_q = self.loss_log_q(negatives, items)
        loss = self.loss(
            logits[:, 0], logits[:, 1:], neg_mask=mask, log_q=log_q, weights=weights,
            pos_log_q=pos_log_q,
        )
        return PairStep(loss, replace(negatives, mask=mask), scores, exclude)

    def pair_scores(self, anchors: Tensor, items: Tensor, negatives: Negatives) -> Tensor:
        """``(B, 1 + K)`` scores of each anchor ``(B,)`` against its item ``(B,)``, then its
        negatives.

        Negatives taken from the batch's positives (``negatives.positions``) reuse the
        positives' encoded vectors when the items' encoder is not a table: each rank encodes
        only its own items, and across ranks the vectors are gathered with their gradients
        (so every rank's loss trains the encoder that made them). Table rows are looked up by
        id instead: the table is replicated, and that moves no vectors.
        """
        model = self.embeddings
        if negatives.positions is None or model.items_are_a_table:
            candidates = torch.cat([items.unsqueeze(1), negatives.ids], dim=1)
            return model(anchors, candidates)
        own = model.encode_items(items)  # (B, D')
        # the positions index the global batch (rank order) when the sampler drew across ranks
        across = bool(getattr(self.sampler, "across_ranks", False))
        pool = gather_with_gradients(own) if across else own  # (W B or B, D')
        candidates = torch.cat([own.unsqueeze(1), pool[negatives.positions]], dim=1)
        return model.geometry.pairs(model.encode_anchors(anchors), candidates)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        step = self.batch_loss(batch)
        self.finite_guard.check(self, "train/loss", step.loss, batch_idx)
        self.log("train/loss", step.loss, prog_bar=True, sync_dist=True)
        self.log_loss_values()
        if self.calibration is not None:
            for name, value in self.calibration.logged_values().items():
                self.log(f"train/{name}", value)
        self.log("train/masked_share", 1.0 - step.negatives.mask.float().mean())
        if self.diagnose_now():
            self.log_negatives(
                step.negatives, step.scores[:, 0].detach(), step.scores[:, 1:].detach(),
                positives=batch["items"], exclude=step.exclude,
            )
        return step.loss * self.backward_scale()

    # --------------------------------------------------------------- optimizer
    def configure_optimizers(self) -> Any:
        optimizer = super().configure_optimizers()
        if any(is_manifold_parameter(p) for p in self.parameters()):
            check_riemannian(optimizer, self.embeddings.score)
        if self.burn_in_epochs == 0:
            return optimizer
        burn_in, factor = self.burn_in_epochs, self.burn_in_lr_factor
        scheduler = LambdaLR(optimizer, lambda epoch: factor if epoch < burn_in else 1.0)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler,
                                                         "interval": "epoch"}}

    # --------------------------------------------------------------- evaluation
    def on_validation_epoch_start(self) -> None:
        self.item_points = self.embeddings.all_items()  # encoded once per validation

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        anchors = batch["anchors"]
        scores = self.embeddings.score_all(anchors, item_points=self.item_points).float()
        if not torch.isfinite(scores).all():
            raise RuntimeError(
                "the embeddings give non-finite scores: training diverged; lower the learning "
                "rate (--model.lr) or use a bounded score (cosine)."
            )
        filtered = torch.zeros_like(scores, dtype=torch.bool)
        filtered[batch["filter_rows"], batch["filter_items"]] = True
        self.ranking.update(scores, batch["targets"], filtered)

    def on_validation_epoch_end(self) -> None:
        results = self.ranking.compute()
        # computed from the states of every rank: the same values everywhere
        values = {f"val/{name}": value.float() for name, value in results.items()}
        self.log_dict(values, sync_dist=True)
        self.ranking.reset()
        self.item_points = None

    # --------------------------------------------------------------- checkpoints
    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        state = checkpoint.get("state_dict", {})
        for side in ("anchor", "item"):  # tables before encoders (0.1)
            old = state.pop(f"embeddings.{side}_table.weight", None)
            if old is not None:
                state[f"embeddings.{side}_encoder.table.weight"] = old
        calibrated = "calibration.bias" in state
        if self.calibration is not None and not calibrated:
            raise ValueError(
                "this checkpoint was trained without score calibration, which this model has "
                f"(score {self.embeddings.score!r} with {type(self.loss).__name__}): set "
                "--model.calibrate false to load it."
            )
        if self.calibration is None and calibrated:
            raise ValueError(
                "this checkpoint was trained with score calibration, which this model has not: "
                "set --model.calibrate true to load it."
            )
        learned = "calibration.log_temperature" in state
        if self.calibration is not None and learned != self.calibration.learn_temperature:
            raise ValueError(
                "this checkpoint's calibration temperature was "
                f"{'learned' if learned else 'fixed'}: set --model.calibration_temperature "
                f"{'null' if learned else 'to a number'} to load it."
            )

    # --------------------------------------------------------------- export
    def embedding_tables(self) -> dict[str, Tensor]:
        """``anchors (A, D)`` and ``items (V, D)`` vectors, float32 on the CPU."""
        return {
            "anchors": self.embeddings.anchor_vectors().float().cpu(),
            "items": self.embeddings.item_vectors().float().cpu(),
        }


def pair_data(data: NegativeSamplingData) -> PairData:
    """``data`` as :class:`PairData`, or a ``RuntimeError`` naming what it lacks."""
    missing = missing_members(data, ("num_anchors", "train_known", "shared_vocabulary"))
    if missing:
        raise RuntimeError(
            "ContrastiveTask needs a DataModule with anchors and known positives "
            f"(PairDataModule); {type(data).__name__} lacks {', '.join(missing)}."
        )
    return data  # type: ignore[return-value]


def default_optimizer(score: str) -> OptimizerFactory:
    """Adam, or geoopt's Riemannian Adam for a hyperbolic score."""
    if score in HYPERBOLIC_SCORES:
        import geoopt

        factory: OptimizerFactory = geoopt.optim.RiemannianAdam
        return factory
    return torch.optim.Adam


def is_manifold_parameter(param: Tensor) -> bool:
    """Whether ``param`` lives on a geoopt manifold (a hyperbolic table)."""
    return hasattr(param, "manifold")


def check_riemannian(optimizer: Optimizer, score: str) -> None:
    """Refuses an optimizer that would move points of a hyperbolic model off the manifold."""
    if not type(optimizer).__module__.startswith("geoopt"):
        raise ValueError(
            f"score {score!r} keeps its tables on a manifold, which {type(optimizer).__name__} "
            "would leave (a Euclidean step has no retraction): use a Riemannian optimizer, "
            "--model.optimizer geoopt.optim.RiemannianAdam (the default) or "
            "geoopt.optim.RiemannianSGD."
        )
