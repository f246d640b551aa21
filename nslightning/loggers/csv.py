"""A CSV logger whose run folders two runs started at once cannot share."""

from __future__ import annotations

import os

from pytorch_lightning import loggers
from pytorch_lightning.utilities import rank_zero_only


class CSVLogger(loggers.CSVLogger):
    """Lightning's ``CSVLogger`` that claims its new ``version_N`` folder with an exclusive
    ``mkdir``.

    Lightning's picks one more than the highest existing version, so two runs started at the
    same moment in one output folder take the same ``version_N`` and write their metrics,
    checkpoints and exports over each other's. Here the first to create the folder owns it, and
    the other takes the next number. Other DDP ranks write nothing and claim no folder (their
    number may then differ; Lightning broadcasts rank 0's checkpoint folder); an explicit
    ``version`` is used as given.
    """

    def _get_next_version(self) -> int:
        version = super()._get_next_version()
        rank: int = rank_zero_only.rank  # type: ignore[attr-defined]
        if rank != 0 or "://" in str(self.root_dir):
            return version
        os.makedirs(self.root_dir, exist_ok=True)
        while True:
            try:
                os.mkdir(os.path.join(self.root_dir, f"version_{version}"))
            except FileExistsError:
                version += 1
            else:
                return version
