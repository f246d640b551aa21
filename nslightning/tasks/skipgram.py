"""Skip-gram with negative sampling (word2vec SGNS) as a LightningModule."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.optim import Optimizer

from nslightning.data.windows import SkipGramBatch
from nslightning.distributed import keep_gradients_reducible, max_over_ranks
from nslightning.loggers.run_ids import save_run_id
from nslightning.losses.functional import sgns_loss
from nslightning.models.skipgram import SkipGramEmbeddings, WindowScorer
from nslightning.optim.sparse_sgd import SparseSGD
from nslightning.samplers.base import NegativeSampler
from nslightning.samplers.unigram import UnigramSampler
from nslightning.tasks.sampler_logging import log_sampler_diagnostics
from nslightning.tasks.vocabulary_fingerprints import check_fingerprints, save_fingerprints

OptimizerFactory = Callable[[Iterable[Any]], Optimizer]
# torch optimizers whose sparse update leaves rows with a zero gradient untouched (SparseAdam's
# momentum would move the masked slots of every update).
SPARSE_TORCH_OPTIMIZERS = (torch.optim.SGD, torch.optim.Adagrad)


class SkipGramTask(pl.LightningModule):
    """Trains word vectors with skip-gram and negative sampling.

    A training batch is a :class:`~nslightning.data.windows.SkipGramBatch`: ``N`` center words,
    each with up to ``2W`` context words. As in word2vec.c, the context word's input vector
    predicts the center word's output vector, and ``K`` negatives replace the center. The ``K``
    negatives are drawn once per center and shared by the pairs of its window (Ji et al. 2016,
    "Parallelizing Word2Vec in Shared and Distributed Memory"), which turns the step into batched
    matrix products; a negative equal to the center (an accidental hit) is masked out.

    word2vec updates after every pair; summing the gradients of tens of thousands of pairs into
    one update over-steps frequent words and diverges. So each batch (one Lightning step, one
    DataLoader chunk) is applied in updates of ``update_size`` centers (manual optimization).
    The objective is summed over an update's pairs, so ``lr`` means word2vec's ``alpha``; it
    decays linearly to ``min_lr`` over the run, as in word2vec and gensim. Lightning counts one
    ``global_step`` per update, so ``--trainer.max_steps`` counts updates of ``update_size``
    centers; the decay ends at ``max_epochs`` or ``max_steps``, whichever comes first.

    Under DDP (``--trainer.strategy ddp``) every rank takes its own chunks and draws its own
    negatives; an update then holds ``update_size`` centers per rank, and its loss is scaled by
    the world size so that DDP's gradient average is the sum over every rank's pairs: ``N``
    processes with ``update_size`` ``u`` update like one process with ``N u``. Ranks agree on
    the number of updates of each batch (one small all-reduce per batch); a rank with fewer
    takes part in the extra ones with an empty update. Gradients stay sparse over gloo (CPU);
    over NCCL, which has no sparse all-reduce, the tables switch to dense gradients.

    Args:
        vocab_size: number of words ``V`` (linked from the DataModule by the CLI).
        dim: vector size ``D``.
        num_negatives: negatives per pair ``K``.
        sampler: where negatives come from; ``UnigramSampler(power=0.75)`` when ``None``.
        optimizer: a factory ``params -> Optimizer``; its learning rate is set by this task.
            The default :class:`~nslightning.optim.SparseSGD` is word2vec's update; with
            ``sparse=True`` SGD (no momentum, no weight decay) and Adagrad (no weight decay)
            also work, other optimizers need ``sparse=False``.
        lr: initial learning rate (word2vec's ``alpha``).
        min_lr: learning rate at the end of the run (set it to ``lr`` for a constant rate).
        update_size: center words per optimizer update.
        exclude_window: a negative equal to any word of the center's window (not only the
            center) counts as an accidental hit: masked, or redrawn by samplers with
            ``redraw=True``. word2vec.c, Keras and TensorFlow only skip the center itself.
        diagnostics_every: log ``sampler/...`` diagnostics (hit rate, unique fraction, positive
            and negative scores, frequency ranks) every this many updates; 0 turns them off.
        sparse: sparse embedding gradients (SGD, SparseSGD, SparseAdam and Adagrad take them);
            set ``False`` for optimizers such as Adam.
    """

    def __init__(
        self,
        vocab_size: int,
        dim: int = 100,
        num_negatives: int = 5,
        sampler: NegativeSampler | None = None,
        optimizer: OptimizerFactory = SparseSGD,
        lr: float = 0.025,
        min_lr: float = 1e-4,
        update_size: int = 512,
        exclude_window: bool = False,
        diagnostics_every: int = 100,
        sparse: bool = True,
    ) -> None:
        super().__init__()
        if num_negatives < 1:
            raise ValueError(f"num_negatives must be >= 1, got {num_negatives}; word2vec uses 5.")
        if not lr > 0 or not 0 <= min_lr <= lr:
            raise ValueError(f"need lr > 0 and 0 <= min_lr <= lr, got lr={lr}, min_lr={min_lr}.")
        if update_size < 1:
            raise ValueError(f"update_size must be >= 1, got {update_size}.")
        if diagnostics_every < 0:
            raise ValueError(f"diagnostics_every must be >= 0 (0: off), got {diagnostics_every}.")
        self.save_hyperparameters(ignore=["sampler", "optimizer"])
        self.automatic_optimization = False
        self.embeddings = SkipGramEmbeddings(vocab_size, dim, sparse=sparse)
        self.sampler = sampler if sampler is not None else UnigramSampler(power=0.75)
        self.optimizer_factory = optimizer
        self.num_negatives = num_negatives
        self.lr = lr
        self.min_lr = min_lr
        self.update_size = update_size
        self.exclude_window = exclude_window
        self.diagnostics_every = diagnostics_every

    @property
    def vocab_size(self) -> int:
        return self.embeddings.vocab_size

    def setup(self, stage: str) -> None:
        keep_gradients_reducible(
            self.embeddings,
            "SkipGramTask",
            " (same updates with SparseSGD or SGD; SparseSGD's max_repeats cap needs sparse "
            "gradients and is not applied)",
        )
        self.sampler.set_rank(self.global_rank)
        counts = getattr(getattr(self.trainer, "datamodule", None), "counts", None)
        if counts is None:
            if self.sampler.num_items == 0:
                raise RuntimeError(
                    "SkipGramTask needs word counts for its sampler: train with a DataModule "
                    "that has `counts` (SkipGramDataModule) or call task.sampler.setup(counts)."
                )
            return
        if len(counts) != self.vocab_size:
            raise ValueError(
                f"vocabulary size mismatch: the model has {self.vocab_size} words but the data "
                f"has {len(counts)}; train with the vocabulary saved beside the checkpoint "
                "(--data.vocabulary PATH) or start a new model."
            )
        if stage == "fit" or self.sampler.num_items != len(counts):
            self.sampler.setup(counts)  # validate/test after fit keep the sampler's state

    def update_loss(
        self, centers: Tensor, contexts: Tensor, mask: Tensor, diagnose: bool = False
    ) -> tuple[Tensor, Tensor]:
        """The summed SGNS loss of some centers' windows, and their number of pairs.

        The sampler gets the centers as positives and as anchors, a
        :class:`~nslightning.models.skipgram.WindowScorer` (hard negatives are scored against
        the row's window, as the loss scores them) and, with ``exclude_window``, the window's
        words as known positives.

        Args:
            centers: ``(n,)`` center ids.
            contexts: ``(n, 2W)`` context ids.
            mask: ``(n, 2W)`` bool, real pairs.
            diagnose: also log the sampler diagnostics of this draw.

        Returns:
            ``(loss_sum, num_pairs)``, two scalars.
        """
        exclude = contexts.masked_fill(~mask, -1) if self.exclude_window else None
        scorer = WindowScorer(self.embeddings, contexts, mask)
        negatives = self.sampler.sample(
            centers, self.num_negatives, anchors=centers, scorer=scorer, exclude=exclude
        )
        targets = torch.cat([centers.unsqueeze(1), negatives.ids], dim=1)  # (n, 1+K)
        scores = self.embeddings(contexts, targets)  # (n, 2W, 1+K)
        weight = mask.to(scores.dtype)
        loss_sum = sgns_loss(
            scores[..., 0], scores[..., 1:], negatives.mask.unsqueeze(1), weight=weight,
            reduction="sum",
        )
        if diagnose:
            with torch.no_grad():
                pairs = weight.sum(1, keepdim=True).clamp_min(1.0)
                neg_scores = (scores[..., 1:] * weight.unsqueeze(-1)).sum(1) / pairs  # (n, K)
                log_sampler_diagnostics(
                    self, negatives, self.vocab_size, scores[..., 0][mask], neg_scores,
                    positives=centers, exclude=exclude,
                )
        return loss_sum, weight.sum()

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
        save_fingerprints(self.trainer, checkpoint)
        save_run_id(self.trainer, checkpoint)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        check_fingerprints(
            self._trainer,
            checkpoint,
            "the checkpoint was trained with another vocabulary (same size, other words or "
            "order): its ids would mean other words. Train with the vocabulary saved beside "
            "the checkpoint (--data.vocabulary PATH).",
        )

    def training_step(self, batch: SkipGramBatch, batch_idx: int) -> None:
        if not isinstance(batch, SkipGramBatch):
            raise TypeError(
                f"SkipGramTask expects SkipGramBatch batches, got {type(batch).__name__}; train "
                "it with SkipGramDataModule (or build batches with skipgram_windows)."
            )
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
            if number < len(updates):
                every = self.diagnostics_every
                diagnose = every > 0 and self.global_step % every == 0
                loss_sum, num_pairs = self.update_loss(*updates[number], diagnose=diagnose)
            else:  # this rank has no rows left: it still joins the gradient all-reduce
                loss_sum, num_pairs = self.empty_update_loss(), total_pairs.new_zeros(())
            optimizer.zero_grad(set_to_none=True)
            self.manual_backward(loss_sum * world)  # DDP averages: the sum over every rank
            optimizer.step()
            total_loss += loss_sum.detach()
            total_pairs += num_pairs
        self.log(
            "train/loss", total_loss / total_pairs.clamp_min(1.0), prog_bar=True, sync_dist=True
        )
        self.log("train/lr", lr)
        self.log("train/pairs", total_pairs, sync_dist=True, reduce_fx="sum")

    def empty_update_loss(self) -> Tensor:
        """A zero loss through both tables (with zero-row gradients), for an update that has
        no rows on this rank."""
        nothing = torch.zeros((0, 1), dtype=torch.long, device=self.device)
        return self.embeddings(nothing, nothing).sum()

    def learning_rate(self, batch_position: float) -> float:
        """Linear decay from ``lr`` to ``min_lr`` over the run.

        Args:
            batch_position: position in the current epoch, in batches (may be fractional).
        """
        trainer = self.trainer
        progress = 0.0
        if trainer.max_epochs is not None and trainer.max_epochs > 0:
            total = max(float(trainer.max_epochs * trainer.num_training_batches), 1.0)
            done = trainer.current_epoch * trainer.num_training_batches + batch_position
            progress = done / total
        if trainer.max_steps is not None and trainer.max_steps > 0:
            progress = max(progress, self.global_step / trainer.max_steps)
        return self.lr - (self.lr - self.min_lr) * min(progress, 1.0)

    def configure_optimizers(self) -> Optimizer:
        optimizer = self.optimizer_factory(self.parameters())
        if not self.embeddings.sparse and isinstance(optimizer, torch.optim.SparseAdam):
            raise ValueError(
                "SparseAdam needs sparse gradients, and these tables have dense ones (sparse "
                "false, or DDP over NCCL): use Adam, SGD or SparseSGD."
            )
        if self.embeddings.sparse and type(optimizer).__module__.startswith("torch.optim"):
            defaults = optimizer.defaults
            unsupported = not isinstance(optimizer, SPARSE_TORCH_OPTIMIZERS) or any(
                defaults.get(option) for option in ("momentum", "weight_decay")
            )
            if unsupported:
                raise ValueError(
                    f"{type(optimizer).__name__} with these options cannot train sparse "
                    "embeddings correctly: set --model.sparse false, or use SparseSGD, SGD "
                    "(no momentum or weight decay) or Adagrad (no weight decay)."
                )
        return optimizer

    def embedding_tables(self) -> dict[str, Tensor]:
        """The exportable tables: ``words``, the word vectors."""
        return {"words": self.word_vectors()}

    def word_vectors(self) -> Tensor:
        """``(V, D)`` the trained word vectors (word2vec's syn0), float32 on the CPU."""
        return self.embeddings.vectors().float().cpu()
