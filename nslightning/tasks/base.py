"""The base of every task: what training with negative sampling needs around a model."""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, Literal, get_args

import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.optim import Optimizer

from nslightning.callbacks.random_state import GlobalRandomState
from nslightning.data.contract import NegativeSamplingData, task_data
from nslightning.deprecation import warn_renamed
from nslightning.distributed import SparseTables, keep_gradients_reducible
from nslightning.loggers.run_ids import save_run_id
from nslightning.losses.base import NegativeSamplingLoss
from nslightning.samplers.base import Negatives, NegativeSampler
from nslightning.samplers.loss_inputs import check_compatible, correction_inputs
from nslightning.tasks.finite_guard import FiniteGuard
from nslightning.tasks.sampler_logging import log_sampler_diagnostics
from nslightning.tasks.vocabulary_fingerprints import check_fingerprints, save_fingerprints

OptimizerFactory = Callable[[Iterable[Any]], Optimizer]
"""``params -> Optimizer``: a class such as ``torch.optim.Adam`` or a ``functools.partial``."""

AccidentalHits = Literal["keep", "positive", "known"]
"""What a drawn negative that is in fact a positive of its row (an accidental hit) does:

- ``keep``: it stays a negative (NCE's derivation keeps noise draws equal to the target);
- ``positive``: the row's own positive is masked out of the loss (word2vec, TensorFlow);
- ``known``: every known positive of the row is masked: the window's words in skip-gram, the
  anchor's training pairs in the contrastive task.

Samplers with ``redraw=True`` draw the masked ids again instead of wasting the slot."""
ACCIDENTAL_HITS: tuple[str, ...] = get_args(AccidentalHits)


class NegativeSamplingTask(pl.LightningModule):
    """A LightningModule trained with a negative sampler and a loss.

    The base owns what every task does the same way, so that a task keeps only its model, its
    batches and its evaluation:

    - **sampler set-up per rank** (:meth:`setup`): the sampler is re-seeded with
      ``seed + rank``, the DataModule (:class:`~nslightning.data.NegativeSamplingData`) is
      checked against the model's size, and the sampler's tables are built from its counts
      (at ``fit``; validation after training keeps them);
    - **sparse or dense gradients**: :meth:`sparse_tables` switch to dense gradients where
      DDP cannot all-reduce sparse ones (NCCL);
    - **the optimizer** (:meth:`configure_optimizers`): built from the factory, checked
      against sparse tables, given ``lr``;
    - **checkpoints**: the vocabularies' fingerprints (a checkpoint of other words is refused),
      the W&B run id, the global random state (exact resume), no checkpoint of a diverged
      state (:class:`~nslightning.tasks.finite_guard.FiniteGuard`);
    - **the loss's inputs** (:meth:`loss_log_q`): ``log_q`` per draw whatever the sampler's
      ``log_q_kind``, and the positive's ``log_q`` for losses that correct it;
    - **sampler diagnostics** every ``diagnostics_every`` steps (:meth:`log_negatives`);
    - **compatibility** of sampler and loss, read from their declared capabilities.

    A subclass builds its model and calls ``super().__init__``, then implements
    ``training_step``, :attr:`vocab_size` and :meth:`embedding_tables`; optional hooks are
    :meth:`setup_data` (what else it reads from the DataModule) and :meth:`sparse_tables`.

    Args:
        sampler: where negatives come from (``None`` for a task without sampling, such as a
            full-softmax language model).
        loss: the training loss, or ``None`` without sampling.
        num_negatives: ``K >= 1`` negatives per positive.
        optimizer: a factory ``params -> Optimizer``; the task sets its learning rate.
        lr: learning rate ``> 0``.
        diagnostics_every: log ``sampler/...`` diagnostics every this many steps; 0 for never.
        divergence_fix: what to do when training diverges, for the
            :class:`~nslightning.tasks.finite_guard.FiniteGuard`'s message.
    """

    items: ClassVar[str] = "items"
    """What the ids are called in messages (``words``, ``tokens``)."""
    data_module: ClassVar[str] = "a DataModule"
    """The DataModule that trains the task, named in messages."""
    needs_data: ClassVar[bool] = True
    """``False`` when a task also trains from plain dataloaders (its sampler set up by hand)."""
    dense_note: ClassVar[str] = ""
    """Appended to the message when NCCL turns the sparse tables dense."""
    dense_parameters_fix: ClassVar[str] = "use Adam or Adagrad"
    """How to fix SparseAdam beside parameters with dense gradients (in the message)."""
    sparse_optimizers: ClassVar[tuple[type[Optimizer], ...]] = (
        torch.optim.SGD,
        torch.optim.Adagrad,
    )
    """torch optimizers that train sparse tables correctly (no momentum, no weight decay)."""

    def __init__(
        self,
        *,
        sampler: NegativeSampler | None,
        loss: NegativeSamplingLoss | None,
        num_negatives: int,
        optimizer: OptimizerFactory,
        lr: float,
        diagnostics_every: int = 0,
        divergence_fix: str,
    ) -> None:
        super().__init__()
        if isinstance(num_negatives, bool) or not isinstance(num_negatives, int):
            raise TypeError(f"num_negatives must be an int, got {num_negatives!r}.")
        if num_negatives < 1:
            raise ValueError(f"num_negatives must be >= 1, got {num_negatives}.")
        if not (isinstance(lr, int | float) and math.isfinite(lr) and lr > 0):
            raise ValueError(f"lr must be a finite number > 0, got {lr}.")
        if diagnostics_every < 0:
            raise ValueError(f"diagnostics_every must be >= 0 (0: off), got {diagnostics_every}.")
        self.sampler = sampler
        self.loss = loss
        self.num_negatives = num_negatives
        self.optimizer_factory = optimizer
        self.lr = lr
        self.diagnostics_every = diagnostics_every
        self.finite_guard = FiniteGuard(divergence_fix)
        if sampler is not None and loss is not None:
            check_compatible(sampler, loss)

    # --------------------------------------------------------------- what a task defines
    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """``V``: the ids the model has rows for and negatives are drawn from."""

    @abstractmethod
    def embedding_tables(self) -> dict[str, Tensor]:
        """The exportable tables by name (the names of the DataModule's ``vocabularies()``),
        each ``(rows, D)`` float32 on the CPU."""

    def sparse_tables(self) -> list[SparseTables]:
        """The embedding tables whose gradients may be sparse (none by default)."""
        return []

    def setup_data(self, stage: str, data: NegativeSamplingData) -> None:
        """Reads what else the task needs from its DataModule (after the size check)."""

    def size_mismatch(self, data: NegativeSamplingData) -> str | None:
        """Why the data does not fit the model, or ``None`` when it does."""
        if data.vocab_size == self.vocab_size:
            return None
        return (
            f"vocabulary size mismatch: the model has {self.vocab_size} {self.items} but the "
            f"data has {data.vocab_size}; use the corpus, min_count and vocabulary the model "
            "was built with (--data.vocabulary_path PATH), or start a new model."
        )

    # --------------------------------------------------------------- set-up
    def setup(self, stage: str) -> None:
        name = type(self).__name__
        for tables in self.sparse_tables():
            keep_gradients_reducible(tables, name, self.dense_note)
        if self.sampler is not None:
            self.sampler.set_rank(self.global_rank)
        data = task_data(self._trainer, name, required=self.needs_data)
        if data is None:
            if self.sampler is not None and self.sampler.vocab_size == 0:
                raise RuntimeError(
                    f"{name} needs {self.items} counts for its sampler: train with "
                    f"{self.data_module} (it has `counts`) or call task.sampler.setup(counts)."
                )
            return
        mismatch = self.size_mismatch(data)
        if mismatch is not None:
            raise ValueError(mismatch)
        self.setup_data(stage, data)
        if self.sampler is not None:
            counts = data.counts
            if stage == "fit" or self.sampler.vocab_size != len(counts):
                self.sampler.setup(counts)  # validate/test after fit keep the sampler's state

    def check_negatives_below_vocabulary(self, what: str, fix: str) -> None:
        """Refuses ``K >= V`` for samplers that draw from the vocabulary (see
        :meth:`~nslightning.samplers.NegativeSampler.check_num_negatives`).

        Args:
            what: what ``V`` is called (``"vocabulary size"``).
            fix: the task's remedies beyond lowering ``--model.num_negatives``.
        """
        if self.sampler is not None:
            self.sampler.check_num_negatives(
                self.num_negatives, self.vocab_size, what, self.items, fix
            )

    # --------------------------------------------------------------- the loss's inputs
    def loss_log_q(
        self, negatives: Negatives, positives: Tensor
    ) -> tuple[Tensor | None, Tensor | None]:
        """The ``log_q`` and ``pos_log_q`` to give the loss, ``None`` where it reads none.

        See :func:`~nslightning.samplers.loss_inputs.correction_inputs`; both are ``None`` for a
        loss that does not read ``log_q``.

        Args:
            negatives: ``(*, K)`` the draw.
            positives: ``(*)`` the ids the negatives stand in for.

        Returns:
            ``(log_q (*, K) or None, pos_log_q (*) or None)``.
        """
        if self.loss is None or self.sampler is None or not self.loss.uses_log_q:
            return None, None
        return correction_inputs(self.sampler, negatives, positives)

    def advance_loss(self, loss: NegativeSamplingLoss | None = None) -> None:
        """Tells the loss the optimizer step (``global_step``), for scheduled hyperparameters
        such as ``WeightedContrastiveLoss(lam=LinearWarmup(...))``; call it before each update.

        Args:
            loss: the loss (the task's own when ``None``).
        """
        loss = self.loss if loss is None else loss
        if loss is not None:
            loss.set_step(self.global_step)

    def log_loss_values(self, loss: NegativeSamplingLoss | None = None, **options: Any) -> None:
        """Logs the loss's scheduled hyperparameters as ``train/<name>`` (``train/lam``).

        Args:
            loss: the loss (the task's own when ``None``).
            options: passed to ``self.log`` (``batch_size``).
        """
        loss = self.loss if loss is None else loss
        if loss is not None:
            for name, value in loss.logged_values().items():
                self.log(f"train/{name}", value, **options)

    def backward_scale(self, loss: NegativeSamplingLoss | None = None) -> int:
        """What a loss with ``reduction="sum"`` is multiplied by before DDP averages the
        gradients (the world size, so that they are the sum over every rank's pairs); 1 for a
        mean, whose totals the task reduces across ranks itself.

        Args:
            loss: the loss (the task's own when ``None``).
        """
        loss = self.loss if loss is None else loss
        if loss is not None and loss.reduction == "sum":
            return self.trainer.world_size
        return 1

    # --------------------------------------------------------------- diagnostics
    def diagnose_now(self, step: int | None = None) -> bool:
        """Whether sampler diagnostics are due at ``step`` (``global_step`` by default)."""
        every = self.diagnostics_every
        return every > 0 and (self.global_step if step is None else step) % every == 0

    def log_negatives(
        self,
        negatives: Negatives,
        pos_scores: Tensor | None = None,
        neg_scores: Tensor | None = None,
        **context: Any,
    ) -> None:
        """Logs the sampler diagnostics of one draw (``sampler/...``, see
        :func:`~nslightning.tasks.sampler_logging.log_sampler_diagnostics`; ``context`` takes
        its ``positives``, ``exclude`` and ``update``)."""
        with torch.no_grad():
            log_sampler_diagnostics(
                self, negatives, self.vocab_size, pos_scores, neg_scores, **context
            )

    # --------------------------------------------------------------- optimizer
    def configure_optimizers(self) -> Optimizer:
        factory: Any = self.optimizer_factory
        try:  # lr given at construction: geoopt's optimizers have no default for it
            optimizer = factory(self.parameters(), lr=self.lr)
        except TypeError as error:  # a factory of params only
            if "unexpected keyword argument 'lr'" not in str(error):
                raise
            optimizer = factory(self.parameters())
        self.check_optimizer(optimizer)
        for group in optimizer.param_groups:
            group["lr"] = self.lr
        return optimizer

    def check_optimizer(self, optimizer: Optimizer) -> None:
        """Refuses optimizers that would train the tables wrongly: SparseAdam on dense
        gradients, and torch optimizers outside :attr:`sparse_optimizers` (or with momentum or
        weight decay, which move the rows a sparse gradient leaves out) on sparse ones."""
        sparse = any(tables.sparse for tables in self.sparse_tables())
        name = type(optimizer).__name__
        if not sparse and isinstance(optimizer, torch.optim.SparseAdam):
            raise ValueError(
                "SparseAdam needs sparse gradients, and these tables have dense ones (sparse "
                "false, or DDP over NCCL): use Adam, Adagrad or SGD."
            )
        if isinstance(optimizer, torch.optim.SparseAdam):
            self.check_all_sparse()
        if not sparse or not type(optimizer).__module__.startswith("torch.optim"):
            return
        unsupported = not isinstance(optimizer, self.sparse_optimizers) or any(
            optimizer.defaults.get(option) for option in ("momentum", "weight_decay")
        )
        if unsupported:
            allowed = ", ".join(cls.__name__ for cls in self.sparse_optimizers)
            raise ValueError(
                f"{name} with these options cannot train sparse embeddings correctly: set "
                f"--model.sparse false, or use SparseSGD or {allowed} (no momentum or weight "
                "decay)."
            )

    def check_all_sparse(self) -> None:
        """Refuses SparseAdam when a trainable parameter outside the sparse tables gets dense
        gradients: it would fail at the first step."""
        sparse = {id(p) for tables in self.sparse_tables() for p in tables.sparse_parameters()}
        dense = [name for name, p in self.named_parameters()
                 if p.requires_grad and id(p) not in sparse]
        if dense:
            raise ValueError(
                f"SparseAdam takes sparse gradients only, and {', '.join(dense[:3])} get dense "
                f"ones: {self.dense_parameters_fix}."
            )

    # --------------------------------------------------------------- checkpoints and guards
    def configure_callbacks(self) -> list[pl.Callback]:
        """Checkpoints carry the global random state, so that a resumed run is exact."""
        return [GlobalRandomState()]

    fingerprint_mismatch: ClassVar[str] = (
        "the checkpoint was trained with another vocabulary (same size, other ids or order): "
        "its rows would mean other ids. Train with the vocabulary it was trained with "
        "(--data.vocabulary_path PATH)."
    )
    """The error for a checkpoint whose vocabularies differ from the DataModule's."""

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.finite_guard.check_state(self)  # no checkpoint of a diverged state
        save_fingerprints(self.trainer, checkpoint)
        save_run_id(self.trainer, checkpoint)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        check_fingerprints(self._trainer, checkpoint, self.fingerprint_mismatch)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.finite_guard.after_batch(self, batch_idx)

    def on_train_end(self) -> None:
        self.finite_guard.check_state(self)  # before an export of diverged vectors


def check_accidental_hits(value: str, supported: tuple[str, ...], task: str) -> None:
    """Raises ``ValueError`` when ``value`` is not one of the task's ``supported`` policies."""
    if value not in ACCIDENTAL_HITS:
        raise ValueError(
            f"accidental_hits must be one of {', '.join(ACCIDENTAL_HITS)}, got {value!r}."
        )
    if value not in supported:
        raise ValueError(
            f"{task} supports accidental_hits {' or '.join(supported)}, not {value!r}."
        )


def hits_from_old_flag(
    task: str, flag_name: str, flag: bool | None, value: str, when_true: str, when_false: str
) -> str:
    """The ``accidental_hits`` that an old boolean spelling means, with a deprecation warning;
    ``value`` when the flag is not given.

    Args:
        task: the task's class name.
        flag_name: the old spelling (``"exclude_window"``).
        flag: its value, or ``None`` when not given.
        value: the ``accidental_hits`` given.
        when_true: what ``flag=True`` means (``"known"``).
        when_false: what ``flag=False`` means (``"positive"``).
    """
    if flag is None:
        return value
    hits = when_true if flag else when_false
    warn_renamed(task, f"{flag_name}={flag}", f"accidental_hits={hits!r}", stacklevel=4)
    return hits
