"""Lightning's ``WandbLogger``, offline unless the user is logged in, with best-value summaries."""

from __future__ import annotations

import netrc
import os
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlparse

import pytorch_lightning.loggers as pl_loggers
from pytorch_lightning.loggers.logger import rank_zero_experiment

# Run summaries that show the best value of a run instead of its last one.
BEST_VALUES: dict[str, str] = {
    "val/ws353": "max",
    "val/simlex": "max",
    "val/analogy": "max",
    "val/mrr": "max",
    "val/map": "max",
    "val/lee_pearson": "max",
    "val/ppl": "min",
    "val/loss": "min",
    "train/loss": "min",
}


def wandb_logged_in() -> bool:
    """Whether W&B credentials are available: ``WANDB_API_KEY`` or a ``wandb login`` entry in
    ``~/.netrc`` for the W&B host (``WANDB_BASE_URL``, api.wandb.ai by default)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or ""
    try:
        return netrc.netrc().authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


class WandbLogger(pl_loggers.WandbLogger):
    """``pytorch_lightning.loggers.WandbLogger`` for nslightning runs.

    - ``offline=None`` (the default) streams the run when W&B credentials are found
      (``wandb login`` or ``WANDB_API_KEY``) and writes it offline otherwise, so the same config
      works with and without an account; ``wandb sync DIR`` uploads an offline run later.
      ``WANDB_MODE`` still overrides both.
    - The run's summary keeps the best value of the metrics in ``best_values`` (``val/ppl``:
      lowest, ``val/ws353``: highest, ...) via ``define_metric``.
    - A run resumed from a checkpoint continues the same W&B run: the tasks save the run id in
      their checkpoints and ``nslightning fit --ckpt_path`` passes it back as ``id``.

    Args:
        offline: ``None`` chooses as above; ``True`` / ``False`` force it.
        name, save_dir, version, id, project, log_model: as Lightning's ``WandbLogger``.
        best_values: ``metric -> "min" | "max"``; :data:`BEST_VALUES` when ``None``.
        **kwargs: Lightning's other ``WandbLogger`` options and ``wandb.init``'s.
    """

    def __init__(
        self,
        name: str | None = None,
        save_dir: str = ".",
        version: str | None = None,
        offline: bool | None = None,
        id: str | None = None,
        project: str | None = None,
        log_model: bool | Literal["all"] = False,
        best_values: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            name=name,
            # absolute: W&B's service process resolves relative paths against its own folder
            save_dir=os.path.abspath(save_dir),
            version=version,
            offline=not wandb_logged_in() if offline is None else offline,
            id=id,
            project=project,
            log_model=log_model,
            **kwargs,
        )
        self.best_values = dict(BEST_VALUES if best_values is None else best_values)
        for name, goal in self.best_values.items():
            if goal not in ("min", "max"):
                raise ValueError(f"best_values[{name!r}] must be 'min' or 'max', got {goal!r}.")
        self._metrics_defined = False

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        run = super().experiment
        if not self._metrics_defined and hasattr(run, "define_metric"):
            for name, goal in self.best_values.items():
                run.define_metric(name, summary=goal, step_metric="trainer/global_step")
            self._metrics_defined = True
        return run
