"""Where a run writes: one folder per run, and the newest ``last.ckpt`` among earlier runs.

Every run gets its own folder, ``<save_dir>/<name>/<version>`` of its first logger (CSV:
``version_N``; W&B: the run id), or ``default_root_dir`` without a logger: its metrics, its
checkpoints (``checkpoints/``, where ``ModelCheckpoint`` puts them) and its exports. Two runs in
one output folder, one after the other or at the same time, never write over each other.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

LAST_CHECKPOINT = "last.ckpt"
RUN_DIR = "{run_dir}"  # in an export path: the run's folder


def run_dir(trainer: pl.Trainer) -> Path:
    """The run's folder, as ``ModelCheckpoint`` resolves it (without ``checkpoints/``)."""
    if not trainer.loggers:
        return Path(trainer.default_root_dir)
    logger = trainer.loggers[0]
    save_dir = logger.save_dir if logger.save_dir is not None else trainer.default_root_dir
    version = logger.version
    version = version if isinstance(version, str) else f"version_{version}"
    return Path(save_dir, str(logger.name), version)


def checkpoint_dir(trainer: pl.Trainer) -> Path:
    """Where this run's checkpoints go: its ``ModelCheckpoint``'s folder, else
    ``<run folder>/checkpoints``."""
    callback = trainer.checkpoint_callback
    dirpath = getattr(callback, "dirpath", None)
    return Path(dirpath) if dirpath else run_dir(trainer) / "checkpoints"


def runs_folder(trainer_config: Any) -> Path:
    """The folder that holds every run's folder for a (CLI) trainer config: the logger's
    ``<save_dir>/<name>``, ``<default_root_dir>/lightning_logs`` with the default logger, or
    ``default_root_dir`` with none."""
    root = Path(str(trainer_config.get("default_root_dir") or os.getcwd()))
    logger = trainer_config.get("logger")
    if isinstance(logger, list):
        logger = logger[0] if logger else False
    if logger is False:
        return root
    if logger is None or logger is True:
        return root / "lightning_logs"
    class_path = str(logger.get("class_path", ""))
    init_args = logger.get("init_args") or {}
    save_dir = init_args.get("save_dir") or root
    if class_path.endswith("WandbLogger"):
        name = init_args.get("project") or "lightning_logs"
    else:
        name = init_args.get("name", "lightning_logs") or ""
    return Path(str(save_dir), str(name))


def checkpoint_folders(trainer_config: Any) -> list[Path]:
    """The explicit ``dirpath`` of each ``ModelCheckpoint`` in a (CLI) trainer config."""
    callbacks = trainer_config.get("callbacks") or []
    folders = []
    for callback in callbacks if isinstance(callbacks, list) else [callbacks]:
        if not hasattr(callback, "get") or not str(callback.get("class_path", "")).endswith(
            "ModelCheckpoint"
        ):
            continue
        dirpath = (callback.get("init_args") or {}).get("dirpath")
        if dirpath:
            folders.append(Path(str(dirpath)))
    return folders


def latest_last_checkpoint(
    folder: Path, extra: list[Path] | None = None, hpc_folder: Path | None = None
) -> Path | None:
    """The newest ``last*.ckpt`` in ``folder/*/checkpoints/`` (or ``folder/checkpoints/``) or
    in the ``extra`` checkpoint folders, or a SLURM requeue's ``hpc_ckpt_N.ckpt`` in
    ``hpc_folder`` (Lightning's ``default_root_dir``)."""
    found = [*folder.glob("*/checkpoints/last*.ckpt"), *folder.glob("checkpoints/last*.ckpt")]
    for other in extra or []:
        found.extend(other.glob("last*.ckpt"))
    if hpc_folder is not None:
        found.extend(hpc_folder.glob("hpc_ckpt_*.ckpt"))
    if not found:
        return None
    return max(found, key=lambda path: path.stat().st_mtime_ns)
