"""Preemption: SIGTERM (schedulers, ``kill``) and SIGUSR1 (SLURM's warning signal) save a
checkpoint and stop the run, which ``--ckpt_path last`` then resumes exactly."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

import pytorch_lightning as pl
import torch
import torch.distributed as dist
from pytorch_lightning.plugins.environments import SLURMEnvironment
from pytorch_lightning.utilities import rank_zero_info

from nslightning.run_folders import LAST_CHECKPOINT, checkpoint_dir

PREEMPTION_SIGNALS = ("SIGTERM", "SIGUSR1")


class Preempted(Exception):
    """The run stopped on a signal after saving ``checkpoint``; ``exit_code`` is ``128 +`` the
    signal's number, as a shell reports a process ended by that signal."""

    def __init__(self, signal_name: str, step: int, checkpoint: str) -> None:
        self.signal_name = signal_name
        self.step = step
        self.checkpoint = checkpoint
        self.exit_code = 128 + int(signal.Signals[signal_name])
        super().__init__(
            f"stopped by {signal_name} after step {step}; saved {checkpoint}. "
            "Resume with the same command and --ckpt_path last."
        )


class Preemption(pl.Callback):
    """On SIGTERM or SIGUSR1 during ``fit``, finishes the current training batch, writes
    ``<run folder>/checkpoints/last.ckpt`` (atomically) and raises :class:`Preempted`.

    The checkpoint holds the position in the epoch and every random stream, so the resumed run
    ends bit-identical to an uninterrupted one (on the CPU, with a deterministic engine). A
    signal that arrives between training batches (validation, the end of an epoch) is acted
    on at the next batch's end; one that arrives before training starts (while the data are
    read, during the sanity check) stops the run without a checkpoint, as Lightning does.
    Under SLURM with Lightning's auto-requeue, SIGUSR1 is left to Lightning (it saves an
    ``hpc`` checkpoint and requeues the job).

    With DDP, rank 0's signals decide: its flag is broadcast every ``ddp_check_every`` batches
    (a one-value collective, which waits for the device), so that all ranks save and stop at
    the same step.

    Args:
        signals: the signals to act on.
        ddp_check_every: with DDP, batches between two looks at rank 0's flag.
    """

    def __init__(
        self, signals: tuple[str, ...] = PREEMPTION_SIGNALS, ddp_check_every: int = 10
    ) -> None:
        unknown = [name for name in signals if name not in PREEMPTION_SIGNALS]
        if unknown:
            raise ValueError(f"Preemption handles SIGTERM and SIGUSR1, not {unknown}.")
        if ddp_check_every < 1:
            raise ValueError(f"ddp_check_every must be >= 1, got {ddp_check_every}.")
        self.signals = tuple(signals)
        self.ddp_check_every = ddp_check_every
        self._received: str | None = None
        self._previous: dict[signal.Signals, Any] = {}

    def _notice(self, signum: int, frame: FrameType | None) -> None:
        if self._received is None:
            self._received = signal.Signals(signum).name

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Here, after Lightning set its own SIGTERM handler (which would end the run at the
        # epoch's end without a checkpoint), not before it, where Lightning would call both.
        # A SIGTERM during the sanity check reached Lightning's handler: act on it here.
        self._received = "SIGTERM" if trainer.received_sigterm else None
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread
        environment = trainer._accelerator_connector.cluster_environment
        slurm_requeue = isinstance(environment, SLURMEnvironment) and environment.auto_requeue
        for name in self.signals:
            if name == "SIGUSR1" and slurm_requeue:
                continue
            number = signal.Signals[name]
            self._previous[number] = signal.signal(number, self._notice)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
        batch_idx: int,
    ) -> None:
        received = self._received
        if trainer.world_size > 1 and dist.is_available() and dist.is_initialized():
            if (batch_idx + 1) % self.ddp_check_every:  # the same batches on every rank
                return
            code = PREEMPTION_SIGNALS.index(received) + 1 if received in PREEMPTION_SIGNALS else 0
            flag = torch.tensor([code], device=trainer.strategy.root_device)
            dist.broadcast(flag, src=0)
            code = int(flag.item())
            received = PREEMPTION_SIGNALS[code - 1] if code else None
        if received is None:
            return
        path = checkpoint_dir(trainer) / LAST_CHECKPOINT
        trainer.save_checkpoint(path)
        rank_zero_info(f"{received}: saved {path} after step {trainer.global_step}")
        raise Preempted(received, trainer.global_step, str(path))

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restore_handlers()

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        self._restore_handlers()

    def _restore_handlers(self) -> None:
        """Puts back the handlers it replaced, where its own is still set (Lightning restores
        the process's original ones when the trainer is torn down)."""
        for number, handler in self._previous.items():
            if signal.getsignal(number) == self._notice:
                signal.signal(number, handler)
        self._previous = {}
