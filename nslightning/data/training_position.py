"""Where training stands in its epoch, saved with the DataModules so that a resumed run
continues the epoch's order instead of replaying it."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl


def training_position(trainer: pl.Trainer | None) -> dict[str, int]:
    """``{"epoch": e, "steps_done": b}``: the epoch a resumed run trains first and how many of
    its batches are done, at the moment a checkpoint is written.

    The batch count is that of the epoch started last (Lightning resets it when an epoch
    starts). A checkpoint written once all its batches are done (at the epoch's end, after its
    last batch, or after ``fit`` returned) records the next epoch with none done.
    """
    if trainer is None:
        return {"epoch": 0, "steps_done": 0}
    epochs: Any = trainer.fit_loop.epoch_progress.current  # a _ProcessedTracker
    batches: Any = trainer.fit_loop.epoch_loop.batch_progress.current
    epoch, done = max(epochs.started - 1, 0), int(batches.processed)
    if done >= trainer.num_training_batches:
        epoch, done = epoch + 1, 0
    return {"epoch": int(epoch), "steps_done": done}


def upcoming_epoch(trainer: pl.Trainer | None) -> int:
    """The epoch the fit loop trains next (when a DataLoader is built for it)."""
    if trainer is None:
        return 0
    epochs: Any = trainer.fit_loop.epoch_progress.current
    return int(epochs.processed)


class PositionedDataModule(pl.LightningDataModule):
    """A DataModule whose checkpoints record the training position (:func:`training_position`)
    and whose next training DataLoader, after a checkpoint is loaded, takes it once
    (:meth:`resume_point`); later DataLoaders start their epochs whole."""

    _resume_at: tuple[int, int] | None = None  # (epoch, steps done) of a loaded checkpoint

    def state_dict(self) -> dict[str, Any]:
        """The position in the epoch's order, so that a resumed run continues it."""
        return {"position": training_position(self.trainer)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._resume_at = saved_position(state_dict)

    def resume_point(self) -> tuple[int, int] | None:
        """The loaded checkpoint's ``(epoch, steps done)``, once; ``None`` after that."""
        point, self._resume_at = self._resume_at, None
        return point


def saved_position(state: dict[str, Any]) -> tuple[int, int] | None:
    """The ``(epoch, steps_done)`` of a DataModule state, ``None`` in a checkpoint from before
    positions were saved."""
    position = state.get("position")
    if position is None:
        return None
    return int(position["epoch"]), int(position["steps_done"])
