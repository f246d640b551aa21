"""Stops training at the first non-finite loss, before a checkpoint of the diverged state.

Every task owns a :class:`FiniteGuard` and calls it at these points:

- ``check(module, "train/loss", loss, batch_idx)`` where it has its training loss. On the CPU
  the value is read at once and a non-finite one raises :class:`NonFiniteLossError`. On an
  accelerator reading it would stall the device every step, so the guard keeps the first
  non-finite value, its step, epoch and batch in device tensors instead.
- ``after_batch(module, batch_idx)`` in ``on_train_batch_end``: reads those tensors on the steps
  whose logs Lightning writes (it reads the logged loss back then anyway), at the end of each
  epoch and when training stops.
- ``check_state(module)`` first in ``on_save_checkpoint`` and in ``on_train_end``: reads them,
  and checks that every parameter is finite (a checkpoint copies them all anyway; this also
  catches what no checked loss saw, such as the fused skip-gram engine's steps that sum no
  loss). Raising there stops ``trainer.save_checkpoint`` before anything is written, and the
  exports of ``on_fit_end``.

Lightning calls ``ModelCheckpoint.on_train_batch_end`` before the task's own hook, so raising
from the task's ``on_train_batch_end`` would come too late; the training step (CPU) and
``on_save_checkpoint`` (everywhere) come before any file is written. Under DDP the ranks agree
(a one-value collective at the points every rank reaches together), so that they all stop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytorch_lightning as pl
import torch
from torch import Tensor

from nslightning.distributed import max_over_ranks, rank, world_size
from nslightning.loggers.steps import logging_step


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss (or parameters): it diverged. A
    ``RuntimeError``, as the command line reports user-fixable run errors (one line, no
    traceback)."""


@dataclass
class Where:
    """Where a non-finite value was seen."""

    step: int
    epoch: int
    batch: int


def describe(value: float) -> str:
    """``nan``, ``inf`` or ``-inf``."""
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")


class FiniteGuard:
    """Raises :class:`NonFiniteLossError` naming the tensor, the step, the epoch and the batch.

    Args:
        advice: what the user can do, ending the message (e.g. ``"lower --model.lr"``).
        defer: keep the check on the device and read it at the points described in the module
            docstring; ``None`` defers on every device but the CPU.
    """

    def __init__(self, advice: str, defer: bool | None = None) -> None:
        self.advice = advice
        self.defer = defer
        self._names: list[str] = []
        # On the device: [seen (0/1), step, epoch, batch, name index] and the first bad value.
        self._record: Tensor | None = None
        self._value: Tensor | None = None

    # ------------------------------------------------------------------ the hooks
    def check(self, module: pl.LightningModule, name: str, value: Tensor, batch_idx: int) -> None:
        """Checks a training value (any shape) of the current step.

        Raises:
            NonFiniteLossError: on the CPU (or with ``defer=False``), at once.
        """
        where = self._where(module, batch_idx)
        detached = value.detach()
        defer = self.defer if self.defer is not None else detached.device.type != "cpu"
        if not defer:
            finite = bool(torch.isfinite(detached).all())
            if world_size() > 1:  # every rank stops at the same step
                bad_rank = self._bad_rank(not finite, detached.device)
                if bad_rank is not None and finite:
                    raise NonFiniteLossError(self._elsewhere(name, bad_rank, where))
            if not finite:
                raise NonFiniteLossError(self._message(name, _first_bad(detached), where))
            return
        self._record_on_device(name, detached, where)

    def after_batch(self, module: pl.LightningModule, batch_idx: int) -> None:
        """Reads what :meth:`check` kept on the device, on the steps whose logs are written,
        at the end of each epoch and when training stops (nothing to do otherwise)."""
        if self._record is None:
            return
        trainer = module.trainer
        every = int(getattr(trainer, "log_every_n_steps", 0) or 0)
        max_steps = trainer.max_steps
        if (
            (every > 0 and (logging_step(trainer) + 1) % every == 0)
            or batch_idx + 1 >= trainer.num_training_batches
            or trainer.should_stop
            or (max_steps is not None and 0 < max_steps <= trainer.global_step)
        ):
            self.raise_pending(module)

    def check_state(self, module: pl.LightningModule) -> None:
        """Raises if a value :meth:`check` kept or a parameter is not finite: before a checkpoint
        is written, and when training ends (before an export).

        A collective under DDP: call it where every rank does (``on_save_checkpoint``, which
        ``trainer.save_checkpoint`` runs on every rank, and ``on_train_end``).
        """
        self.raise_pending(module)
        found = _non_finite_parameter(module)
        where = self._where(module, None)
        if world_size() > 1:
            bad_rank = self._bad_rank(found is not None, module.device)
            if bad_rank is not None and found is None:
                raise NonFiniteLossError(self._elsewhere("parameter", bad_rank, where))
        if found is not None:
            name, values = found
            raise NonFiniteLossError(
                self._message(f"the parameter {name}", _first_bad(values), where, in_state=True)
            )

    def raise_pending(self, module: pl.LightningModule) -> None:
        """Raises for the first non-finite value :meth:`check` kept on the device, if any (a
        read-back; a collective under DDP)."""
        if self._record is None or self._value is None:
            return
        record = [int(v) for v in self._record.tolist()]
        value = float(self._value)
        seen = bool(record[0])
        if world_size() > 1:
            bad_rank = self._bad_rank(seen, module.device)
            if bad_rank is not None and not seen:
                raise NonFiniteLossError(
                    self._elsewhere("train/loss", bad_rank, self._where(module, None))
                )
        if seen:
            self._record = self._value = None  # reported once
            where = Where(step=record[1], epoch=record[2], batch=record[3])
            raise NonFiniteLossError(self._message(self._names[record[4]], value, where))

    # ------------------------------------------------------------------ helpers
    def _record_on_device(self, name: str, value: Tensor, where: Where) -> None:
        """Keeps the first non-finite value and where it was seen, without a read-back."""
        if name not in self._names:
            self._names.append(name)
        if self._record is None or self._record.device != value.device:
            self._record = torch.zeros(5, dtype=torch.int64, device=value.device)
            self._value = torch.zeros((), dtype=torch.float64, device=value.device)
        assert self._value is not None
        flat = value.reshape(-1).double()
        bad = ~torch.isfinite(flat)
        new = bad.any() & (self._record[0] == 0)
        # Python numbers go in as kernel arguments: nothing is copied to the device.
        fields = (1, where.step, where.epoch, where.batch, self._names.index(name))
        for index, field in enumerate(fields):
            self._record[index] = torch.where(new, field, self._record[index])
        # gather, not flat[index]: indexing with a tensor would read the index back
        if flat.numel():
            first = flat.gather(0, bad.long().argmax().view(1))[0]
            self._value = torch.where(new, first, self._value)

    @staticmethod
    def _where(module: pl.LightningModule, batch_idx: int | None) -> Where:
        trainer = module.trainer
        if batch_idx is None:
            batch_idx = int(trainer.fit_loop.epoch_loop.batch_idx)
        # the step of this batch's rows in the logs (Lightning's batches), whatever the
        # optimizer steps per batch
        return Where(step=logging_step(trainer), epoch=int(trainer.current_epoch),
                     batch=int(batch_idx))

    @staticmethod
    def _bad_rank(bad: bool, device: torch.device) -> int | None:
        """The highest rank that saw a non-finite value, or ``None`` (a collective)."""
        found = max_over_ranks(rank() + 1 if bad else 0, device)
        return found - 1 if found else None

    def _message(
        self, name: str, value: float, where: Where, in_state: bool = False
    ) -> str:
        diverged = "training diverged at or before this step" if in_state else (
            "training diverged")
        return (
            f"{name} is {describe(value)} at step {where.step} (epoch {where.epoch}, batch "
            f"{where.batch}): {diverged}, and no checkpoint of this state is saved. "
            f"{self.advice}"
        )

    def _elsewhere(self, name: str, rank: int, where: Where) -> str:
        return (
            f"rank {rank} found a non-finite {name} by step {where.step} (epoch {where.epoch}, "
            f"batch {where.batch}); see its error. Training diverged, and no checkpoint of this "
            f"state is saved. {self.advice}"
        )


def _non_finite_parameter(module: torch.nn.Module) -> tuple[str, Tensor] | None:
    """The first parameter holding a NaN or an infinity, or ``None`` (one read-back; the
    extremes propagate NaN, so no mask as large as a table is made)."""
    named = [(name, parameter.detach()) for name, parameter in module.named_parameters()
             if parameter.is_floating_point() and parameter.numel()]
    if not named:
        return None
    extremes = torch.stack([torch.stack(torch.aminmax(values)).double() for _, values in named])
    finite = torch.isfinite(extremes).all(dim=1).cpu()
    if bool(finite.all()):
        return None
    return named[int((~finite).nonzero()[0, 0])]


def _first_bad(values: Tensor) -> float:
    """The first non-finite element of ``values`` (read back: the CPU path)."""
    flat = values.reshape(-1)
    bad = (~torch.isfinite(flat)).nonzero()
    return float(flat[bad[0, 0]]) if bad.numel() else 0.0
