"""Skip-gram with negative sampling (word2vec SGNS) as a LightningModule."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from pytorch_lightning.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor
from torch.optim import Optimizer

from nslightning.data.windows import SkipGramBatch
from nslightning.deprecation import warn_renamed
from nslightning.distributed import SparseTables, max_over_ranks
from nslightning.kernels.fused_sgns import fused_sgns_update
from nslightning.losses.base import NegativeSamplingLoss
from nslightning.losses.sgns import SGNSLoss
from nslightning.models.skipgram import SkipGramEmbeddings, WindowScorer
from nslightning.optim.sparse_sgd import SparseSGD
from nslightning.samplers.base import Negatives, NegativeSampler
from nslightning.samplers.unigram import UnigramSampler
from nslightning.tasks.base import (
    AccidentalHits,
    NegativeSamplingTask,
    OptimizerFactory,
    check_accidental_hits,
    hits_from_old_flag,
)
from nslightning.tasks.skipgram_engine import (
    Engine,
    RankUpdates,
    fused_obstacle,
    resolve_engine,
)

ENGINE_KEY = "skipgram_engine"  # the engine that trained a checkpoint


class SkipGramTask(NegativeSamplingTask):
    """Trains word vectors with skip-gram and negative sampling.

    A training batch is a :class:`~nslightning.data.windows.SkipGramBatch`: one chunk of the
    corpus as ``N`` center words, each with up to ``2W`` context words. As in word2vec.c, the
    context word's input vector predicts the center word's output vector, and ``K`` negatives
    replace the center. The ``K`` negatives are drawn once per center, for the whole chunk
    before it is trained, and shared by the pairs of its window (Ji et al. 2016); a negative
    equal to the center (an accidental hit) is skipped. The loss is summed over the pairs
    (word2vec's learning rate is per pair): a loss with ``reduction="mean"`` is multiplied by
    the number of pairs. The learning rate decays linearly from
    ``lr`` to ``min_lr`` over the run (word2vec's ``alpha``), ending at ``max_epochs`` or
    ``max_steps``, whichever comes first.

    Two engines train the same model (``engine``):

    - ``fused`` (``auto`` on the CPU): word2vec.c's per-pair SGD, one compiled kernel per chunk
      (:func:`~nslightning.kernels.fused_sgns_update`). Each pair's update is applied before the
      next pair is read, the learning rate decays inside the chunk, and ``threads`` numba
      threads (Triton programs on a GPU) take contiguous parts of the chunk Hogwild. One
      Lightning step is one chunk. It trains the losses that declare the fused form
      ``"sgns"`` (:class:`~nslightning.losses.SGNSLoss`, whose ``lam`` scales the negatives'
      gradient); another loss needs ``autograd``. The optimizer is
      only a step counter here (the kernel is the update), so it must be SparseSGD or plain
      SGD; with ``auto``, another optimizer, float64 tables or 16-bit AMP select ``autograd``
      (``fused`` refuses them). Under DDP each rank trains its own chunks and the ranks
      exchange the sum of their table changes every ``sync_every`` chunks, at each epoch's end
      and when training ends (:class:`~nslightning.tasks.skipgram_engine.RankUpdates`).
    - ``autograd`` (``auto`` on CUDA until the Triton kernel's GPU figures are taken): each
      chunk is applied in batched updates of ``update_size`` centers through autograd and the
      optimizer (any loss, any optimizer, sampler diagnostics at any update). Summing the
      gradients of tens of thousands of pairs into one update over-steps frequent words, hence
      the small updates and SparseSGD's repeat cap. Lightning counts one ``global_step`` per
      update. Under
      DDP an update holds ``update_size`` centers per rank and its loss is scaled by the world
      size, so that DDP's gradient average is the sum over every rank's pairs; ranks agree on
      the number of updates of each batch (one small all-reduce per batch). Gradients stay
      sparse over gloo; over NCCL, which has no sparse all-reduce, the tables switch to dense.

    Args:
        vocab_size: number of words ``V`` (linked from the DataModule by the CLI).
        dim: vector size ``D``.
        num_negatives: negatives per pair ``K``; below ``V`` unless the sampler draws from the
            batch (in-batch), else the task refuses it.
        sampler: where negatives come from; ``UnigramSampler(power=0.75)`` when ``None``.
        loss: a :class:`~nslightning.losses.NegativeSamplingLoss`; ``SGNSLoss(lam=1,
            reduction="sum")`` (word2vec) when ``None``. It gets ``(pos_scores (n, 2W),
            neg_scores (n, 2W, K), neg_mask (n, 1, K), log_q (n, 1, K), weights (n, 2W))``,
            the weights marking the window's real pairs.
        optimizer: a factory ``params -> Optimizer``; its learning rate is set by this task.
            The default :class:`~nslightning.optim.SparseSGD` is word2vec's update; with
            ``sparse=True`` SGD (no momentum, no weight decay) and Adagrad (no weight decay)
            also work, other optimizers need ``sparse=False``.
        lr: initial learning rate (word2vec's ``alpha``).
        min_lr: learning rate at the end of the run (set it to ``lr`` for a constant rate).
        update_size: center words per optimizer update.
        accidental_hits: ``"positive"`` masks a negative equal to the center (word2vec.c,
            Keras and TensorFlow); ``"known"`` masks any word of the center's window too.
            Samplers with ``redraw=True`` draw those again instead.
        diagnostics_every: log ``sampler/...`` diagnostics (hit rate, unique fraction, positive
            and negative scores, frequency ranks) every this many updates; 0 turns them off.
            Their rows are at Lightning's step (batches, as every other row); the update
            count is the column ``sampler/update``.
        sparse: sparse embedding gradients (SGD, SparseSGD, SparseAdam and Adagrad take them);
            set ``False`` for optimizers such as Adam (autograd engine).
        engine: ``auto``, ``fused`` or ``autograd`` (see above).
        threads: CPU threads of the fused engine; ``None`` follows ``torch.get_num_threads()``.
            With one thread a run is bit-identical when repeated.
        sync_every: fused engine under DDP: chunks between exchanges of the ranks' changes.
        lam: deprecated, use ``loss: SGNSLoss`` with ``lam``.
        exclude_window: deprecated, use ``accidental_hits`` (``True`` is ``"known"``).
    """

    items = "words"
    data_module = "SkipGramDataModule"
    needs_data = False  # trains from plain dataloaders too, its sampler set up by hand
    dense_note = (
        " (same updates with SparseSGD or SGD; SparseSGD's max_repeats cap needs sparse "
        "gradients and is not applied)"
    )
    fingerprint_mismatch = (
        "the checkpoint was trained with another vocabulary (same size, other words or "
        "order): its ids would mean other words. Train with the vocabulary saved beside "
        "the checkpoint (--data.vocabulary_path PATH)."
    )

    def __init__(
        self,
        vocab_size: int,
        dim: int = 100,
        num_negatives: int = 5,
        sampler: NegativeSampler | None = None,
        loss: NegativeSamplingLoss | None = None,
        optimizer: OptimizerFactory = SparseSGD,
        lr: float = 0.025,
        min_lr: float = 1e-4,
        update_size: int = 512,
        accidental_hits: AccidentalHits = "positive",
        diagnostics_every: int = 100,
        sparse: bool = True,
        engine: Engine = "auto",
        threads: int | None = None,
        sync_every: int = 1,
        lam: float | None = None,
        exclude_window: bool | None = None,
    ) -> None:
        if not lr > 0 or not 0 <= min_lr <= lr:
            raise ValueError(f"need lr > 0 and 0 <= min_lr <= lr, got lr={lr}, min_lr={min_lr}.")
        if update_size < 1:
            raise ValueError(f"update_size must be >= 1, got {update_size}.")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1 or None (torch's thread count), got {threads}.")
        resolve_engine(engine, torch.device("cpu"))  # rejects unknown names now
        if lam is not None:  # the λ of the SGNS loss, which is now a loss object
            warn_renamed(  # it replaces the λ of a loss given too (a config's SGNSLoss)
                "SkipGramTask", "lam", "--model.loss.lam (SGNSLoss's lam, which lam replaces)"
            )
            if loss is not None and not isinstance(loss, SGNSLoss):
                raise ValueError(
                    f"lam is SGNSLoss's λ, and the loss is {type(loss).__name__}: set the "
                    "loss's own options instead."
                )
            loss = SGNSLoss(lam=lam, reduction="sum" if loss is None else loss.reduction)
        accidental_hits = hits_from_old_flag(  # type: ignore[assignment]
            "SkipGramTask", "exclude_window", exclude_window, accidental_hits, "known", "positive"
        )
        check_accidental_hits(accidental_hits, ("positive", "known"), "SkipGramTask")
        super().__init__(
            sampler=sampler if sampler is not None else UnigramSampler(power=0.75),
            loss=loss if loss is not None else SGNSLoss(reduction="sum"),
            num_negatives=num_negatives,
            optimizer=optimizer,
            lr=lr,
            diagnostics_every=diagnostics_every,
            divergence_fix=(
                f"Lower --model.lr (it is {lr}), and resume from a checkpoint written before "
                "this step if you have one."
            ),
        )
        self.save_hyperparameters(ignore=["sampler", "optimizer", "loss"])
        self.automatic_optimization = False
        self.embeddings = SkipGramEmbeddings(vocab_size, dim, sparse=sparse)
        self.check_negatives_below_vocabulary(
            "vocabulary size",
            " (word2vec uses 5 to 20), or lower --data.min_count to keep more words",
        )
        self.min_lr = min_lr
        self.update_size = update_size
        self.accidental_hits: AccidentalHits = accidental_hits
        self.engine = engine
        self.threads = threads
        self.rank_updates = RankUpdates(sync_every)
        self._engine_in_use: str | None = None
        self._kernel_threads: int | None = None
        self._checkpoint_engine: str | None = None  # the engine of a checkpoint being resumed

    # the task's sampler and loss always exist (defaults above)
    sampler: NegativeSampler
    loss: NegativeSamplingLoss

    @property
    def vocab_size(self) -> int:
        return self.embeddings.vocab_size

    def sparse_tables(self) -> list[SparseTables]:
        return [self.embeddings]

    def draw_negatives(self, centers: Tensor, contexts: Tensor, mask: Tensor) -> Negatives:
        """``K`` negatives per center, from the task's sampler.

        The sampler gets the centers as positives and as anchors, a
        :class:`~nslightning.models.skipgram.WindowScorer` (hard negatives are scored against
        the row's window, as the loss scores them) and, with ``accidental_hits="known"``, the
        window's words as known positives.

        Args:
            centers: ``(n,)`` center ids.
            contexts: ``(n, 2W)`` context ids.
            mask: ``(n, 2W)`` bool, real pairs.

        Returns:
            :class:`~nslightning.samplers.base.Negatives` of shape ``(n, K)``.
        """
        scorer = WindowScorer(self.embeddings, contexts, mask)
        return self.sampler.sample(
            centers, self.num_negatives, anchors=centers, scorer=scorer,
            exclude=self.window_exclusions(contexts, mask),
        )

    def window_exclusions(self, contexts: Tensor, mask: Tensor) -> Tensor | None:
        """``(n, 2W)`` the window's words (``-1`` pads) with ``accidental_hits="known"``, else
        ``None``."""
        return contexts.masked_fill(~mask, -1) if self.accidental_hits == "known" else None

    def update_loss(
        self, centers: Tensor, contexts: Tensor, mask: Tensor, diagnose: bool = False
    ) -> tuple[Tensor, Tensor]:
        """The loss of some centers' windows summed over their pairs, and their number of pairs
        (autograd).

        Args:
            centers: ``(n,)`` center ids.
            contexts: ``(n, 2W)`` context ids.
            mask: ``(n, 2W)`` bool, real pairs.
            diagnose: also log the sampler diagnostics of this draw.

        Returns:
            ``(loss_sum, num_pairs)``, two scalars.
        """
        negatives = self.draw_negatives(centers, contexts, mask)
        targets = torch.cat([centers.unsqueeze(1), negatives.ids], dim=1)  # (n, 1+K)
        scores = self.embeddings(contexts, targets)  # (n, 2W, 1+K)
        weight = mask.to(scores.dtype)
        log_q, pos_log_q = self.loss_log_q(negatives, centers)
        value = self.loss(
            scores[..., 0], scores[..., 1:], neg_mask=negatives.mask.unsqueeze(1),
            log_q=None if log_q is None else log_q.unsqueeze(1), weights=weight,
            pos_log_q=None if pos_log_q is None else pos_log_q.unsqueeze(1),
        )
        loss_sum = value if self.loss.reduction == "sum" else value * weight.sum()
        if diagnose:
            self.log_diagnostics(centers, contexts, mask, negatives, scores.detach())
        return loss_sum, weight.sum()

    def log_diagnostics(
        self, centers: Tensor, contexts: Tensor, mask: Tensor, negatives: Negatives,
        scores: Tensor | None = None,
    ) -> None:
        """Logs the sampler diagnostics of one draw.

        Args:
            centers, contexts, mask: the rows, as in :meth:`draw_negatives`.
            negatives: ``(n, K)`` their negatives.
            scores: ``(n, 2W, 1+K)`` the rows' scores of the center and the negatives; scored
                here (with the tables as they are now) when ``None``.
        """
        with torch.no_grad():
            if scores is None:
                targets = torch.cat([centers.unsqueeze(1), negatives.ids], dim=1)
                scores = self.embeddings(contexts, targets)
            weight = mask.to(scores.dtype)
            pairs = weight.sum(1, keepdim=True).clamp_min(1.0)
            neg_scores = (scores[..., 1:] * weight.unsqueeze(-1)).sum(1) / pairs  # (n, K)
        self.log_negatives(
            negatives, scores[..., 0][mask], neg_scores,
            positives=centers, exclude=self.window_exclusions(contexts, mask),
            update=self.global_step,  # several updates per step under autograd
        )

    def updates(self, batch: SkipGramBatch) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        """Splits a batch into updates of ``update_size`` centers.

        On the CPU, rows are ordered by how far their window reaches and each update keeps only
        the context columns it needs (about 40% fewer slots); elsewhere rows stay in order at
        full width, so that nothing waits on the device.

        Yields:
            ``(centers (n,), contexts (n, 2w), mask (n, 2w))`` with ``w <= W``.
        """
        centers, contexts, mask = batch.centers, batch.contexts, batch.mask
        num_rows, window = centers.shape[0], contexts.shape[1] // 2
        if centers.device.type != "cpu":
            for start in range(0, num_rows, self.update_size):
                span = slice(start, start + self.update_size)
                yield centers[span], contexts[span], mask[span]
            return
        distance = torch.cat([torch.arange(window, 0, -1), torch.arange(1, window + 1)])
        reach = (mask * distance).amax(dim=1)
        order = torch.argsort(reach, stable=True)
        sorted_reach: list[int] = reach[order].tolist()
        for start in range(sorted_reach.count(0), num_rows, self.update_size):
            rows = order[start : start + self.update_size]
            width = sorted_reach[min(start + self.update_size, num_rows) - 1]
            columns = slice(window - width, window + width)
            yield centers[rows], contexts[rows, columns], mask[rows, columns]

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint[ENGINE_KEY] = self.engine_in_use

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Checkpoints from before the fused engine carry no engine: autograd trained them.
        self._checkpoint_engine = checkpoint.get(ENGINE_KEY, "autograd")
        super().on_load_checkpoint(checkpoint)

    def training_step(self, batch: SkipGramBatch, batch_idx: int) -> None:
        if not isinstance(batch, SkipGramBatch):
            raise TypeError(
                f"SkipGramTask expects SkipGramBatch batches, got {type(batch).__name__}; train "
                "it with SkipGramDataModule (or build batches with skipgram_windows)."
            )
        if self.engine_in_use == "fused":
            logged = self.loss_logged_now(batch_idx)
            loss_sum, num_pairs, lr = self.fused_step(batch, batch_idx, with_loss=logged)
        else:
            logged = True
            loss_sum, num_pairs, lr = self.autograd_step(batch, batch_idx)
        if not logged:  # Lightning would not write this step's values (each log costs ~0.2 ms)
            return
        rows = batch.centers.shape[0]  # given, so that Lightning does not search the batch
        if loss_sum is not None:
            loss = loss_sum / num_pairs.clamp_min(1.0)
            self.finite_guard.check(self, "train/loss", loss, batch_idx)
            self.log("train/loss", loss, prog_bar=True, sync_dist=True, batch_size=rows)
        self.log("train/lr", lr, batch_size=rows)
        self.log("train/pairs", num_pairs, sync_dist=True, reduce_fx="sum", batch_size=rows)
        self.log_loss_values(batch_size=rows)

    def fused_step(
        self, batch: SkipGramBatch, batch_idx: int, with_loss: bool = True
    ) -> tuple[Tensor | None, Tensor, float]:
        """Trains a chunk with the fused kernel; one optimizer step (a step counter here).

        Args:
            with_loss: sum the loss too (about a fifth of the kernel's time); the task does it
                on the steps whose logs Lightning writes.

        Returns:
            ``(loss_sum or None, num_pairs, learning rate at the chunk's end)``.
        """
        optimizer = self.optimizers()
        assert not isinstance(optimizer, list)
        centers, contexts, mask = batch.centers, batch.contexts, batch.mask
        syn0, syn1 = self.embeddings.input.weight, self.embeddings.output.weight
        lr_start = self.learning_rate(batch_idx)
        lr_end = self.learning_rate(batch_idx + 1, steps_ahead=1)
        self.advance_loss()
        lam = self.fused_lam()
        with torch.no_grad():
            negatives = self.draw_negatives(centers, contexts, mask)
            if self.diagnose_now():
                # the first update_size rows: scoring a whole chunk would gather (N, 2W, D)
                rows = slice(0, self.update_size)
                first = Negatives(
                    negatives.ids[rows],
                    None if negatives.log_q is None else negatives.log_q[rows],
                    negatives.mask[rows],
                )
                self.log_diagnostics(centers[rows], contexts[rows], mask[rows], first)
            self.rank_updates.before_chunk([syn0, syn1])  # numba's threads: on_train_start
            loss_sum, num_pairs = fused_sgns_update(
                syn0, syn1, centers, contexts, mask, negatives.ids, negatives.mask,
                lr_start, lr_end, lam=lam, with_loss=with_loss,
            )
            max_steps = self.trainer.max_steps
            ends = batch_idx + 1 >= self.trainer.num_training_batches or (
                max_steps is not None and 0 < max_steps <= self.global_step + 1
            )
            self.rank_updates.after_chunk([syn0, syn1], merge_now=ends)
        for group in optimizer.param_groups:
            group["lr"] = lr_end  # what learning-rate monitors read
        optimizer.step()  # no gradients: only advances global_step, one per chunk
        return loss_sum, num_pairs, lr_end

    def loss_logged_now(self, batch_idx: int) -> bool:
        """Whether Lightning writes this step's logs (every ``log_every_n_steps`` steps, never
        with 0, and when the run is stopping) or the epoch ends (so that monitors of
        ``train/loss`` see the epoch's last value): the fused engine sums the loss and logs
        only then."""
        every = int(getattr(self.trainer, "log_every_n_steps", 1))
        last_of_epoch = batch_idx + 1 >= self.trainer.num_training_batches
        on_schedule = every > 0 and (self.global_step + 1) % every == 0
        return on_schedule or last_of_epoch or self.trainer.should_stop

    def on_train_start(self) -> None:
        self.rank_updates.reset()  # the tables of this fit are the base of the first merge
        if self.engine_in_use == "fused" and self.device.type == "cpu":
            from nslightning.kernels.sgns_numba import load_kernel, set_threads

            set_threads(self.kernel_threads)
            load_kernel()  # before the first step, not inside it

    def on_train_end(self) -> None:
        # A run stopped early (EarlyStopping, a signal to stop) merges what is left, so that
        # every rank, and the export on rank 0, hold every rank's updates.
        self.rank_updates.flush([self.embeddings.input.weight, self.embeddings.output.weight])
        super().on_train_end()  # the fused engine sums no loss on most steps: check the tables

    def autograd_step(self, batch: SkipGramBatch, batch_idx: int) -> tuple[Tensor, Tensor, float]:
        """Trains a chunk in updates of ``update_size`` centers through autograd.

        Returns:
            ``(loss_sum, num_pairs, learning rate of the last update)``.
        """
        optimizer = self.optimizers()
        assert not isinstance(optimizer, list)
        num_rows = batch.centers.shape[0]
        total_loss = batch.centers.new_zeros((), dtype=torch.float32)
        total_pairs = torch.zeros_like(total_loss)
        lr = self.lr
        updates = list(self.updates(batch))
        world = self.trainer.world_size
        count = max_over_ranks(len(updates), self.device)
        for number in range(count):
            position = number * self.update_size / max(num_rows, 1)
            lr = self.learning_rate(batch_idx + min(position, 1.0))
            for group in optimizer.param_groups:
                group["lr"] = lr
            self.advance_loss()  # global_step counts updates here
            if number < len(updates):
                diagnose = self.diagnose_now()
                loss_sum, num_pairs = self.update_loss(*updates[number], diagnose=diagnose)
            else:  # this rank has no rows left: it still joins the gradient all-reduce
                loss_sum, num_pairs = self.empty_update_loss(), total_pairs.new_zeros(())
            optimizer.zero_grad(set_to_none=True)
            self.manual_backward(loss_sum * world)  # DDP averages: the sum over every rank
            optimizer.step()
            total_loss += loss_sum.detach()
            total_pairs += num_pairs
        return total_loss, total_pairs, lr

    def empty_update_loss(self) -> Tensor:
        """A zero loss through both tables (with zero-row gradients), for an update that has
        no rows on this rank."""
        nothing = torch.zeros((0, 1), dtype=torch.long, device=self.device)
        return self.embeddings(nothing, nothing).sum()

    def learning_rate(self, batch_position: float, steps_ahead: int = 0) -> float:
        """Linear decay from ``lr`` to ``min_lr`` over the run.

        Args:
            batch_position: position in the current epoch, in batches (may be fractional).
            steps_ahead: optimizer steps past ``global_step`` (for ``max_steps``).
        """
        trainer = self.trainer
        progress = 0.0
        if trainer.max_epochs is not None and trainer.max_epochs > 0:
            total = max(float(trainer.max_epochs * trainer.num_training_batches), 1.0)
            done = trainer.current_epoch * trainer.num_training_batches + batch_position
            progress = done / total
        if trainer.max_steps is not None and trainer.max_steps > 0:
            progress = max(progress, (self.global_step + steps_ahead) / trainer.max_steps)
        return self.lr - (self.lr - self.min_lr) * min(progress, 1.0)

    @property
    def kernel_threads(self) -> int:
        """The fused engine's CPU threads: ``threads``, or torch's thread count when training
        starts (numba's OpenMP layer can change torch's count later: it is read once)."""
        if self._kernel_threads is None:
            self._kernel_threads = self.threads or torch.get_num_threads()
        return self._kernel_threads

    @property
    def engine_in_use(self) -> str:
        """``fused`` or ``autograd``: what ``engine`` means on the task's device."""
        if self._engine_in_use is None:
            self._engine_in_use = resolve_engine(self.engine, self.device)
        return self._engine_in_use

    def resumed_engine(self, engine: str, fused_possible: bool) -> str:
        """The engine to train with when a checkpoint trained by another one is resumed.

        ``global_step`` counts updates under autograd and chunks under fused, so a switch
        would move ``max_steps`` and the learning-rate schedule: ``auto`` continues with the
        checkpoint's engine; an explicit engine is kept, with a warning.
        """
        saved = self._checkpoint_engine
        if saved is None or saved == engine:
            return engine
        if self.engine == "auto" and (saved == "autograd" or fused_possible):
            rank_zero_info(
                f"SkipGramTask: the checkpoint was trained with the {saved} engine; engine auto "
                "continues with it."
            )
            return saved
        rank_zero_warn(
            f"the checkpoint was trained with the {saved} engine and this run uses {engine}: "
            "global_step counted updates under autograd and chunks under fused, so max_steps "
            f"and the learning-rate schedule shift. Pass --model.engine {saved} to continue it "
            "as it was trained."
        )
        return engine

    def configure_optimizers(self) -> Optimizer:
        self._kernel_threads = None
        optimizer = self.optimizer_factory(self.parameters())
        # The device is final here: resolve the engine for it, and for this set-up.
        engine: str = resolve_engine(self.engine, self.device)
        precision = getattr(self.trainer, "precision", "")
        obstacle = fused_obstacle(
            optimizer, self.embeddings.input.weight.dtype, precision, self.loss
        )
        if engine == "fused" and obstacle is not None:
            if self.engine == "fused":
                raise ValueError(
                    f"engine fused cannot train this set-up: {obstacle}. Keep the default "
                    "loss (SGNSLoss) and optimizer (SparseSGD), float32 and no 16-bit AMP, or "
                    "set --model.engine autograd."
                )
            rank_zero_info(f"SkipGramTask: engine auto uses autograd because {obstacle}.")
            engine = "autograd"
        # auto picks the fused engine by itself only on the CPU (see resolve_engine)
        engine = self.resumed_engine(
            engine, fused_possible=obstacle is None and self.device.type == "cpu"
        )
        self._engine_in_use = engine
        if engine == "fused":
            return optimizer
        self.check_optimizer(optimizer)
        return optimizer

    def fused_lam(self) -> float:
        """The fused kernel's ``λ``: the loss's, which declares the fused form ``"sgns"``
        (checked when the engine is chosen)."""
        lam = getattr(self.loss, "lam", None)
        if self.loss.fused_form != "sgns" or not isinstance(lam, float | int):
            raise RuntimeError(
                f"the fused engine trains SGNSLoss, not {type(self.loss).__name__}; set "
                "--model.engine autograd."
            )
        return float(lam)

    def embedding_tables(self) -> dict[str, Tensor]:
        """The exportable tables: ``words``, the word vectors."""
        return {"words": self.word_vectors()}

    def word_vectors(self) -> Tensor:
        """``(V, D)`` the trained word vectors (word2vec's syn0), float32 on the CPU."""
        return self.embeddings.vectors().float().cpu()
