"""Loggers: CSV and W&B set up for nslightning runs, and the run id kept in checkpoints."""

from nslightning.loggers.csv import CSVLogger
from nslightning.loggers.run_ids import WANDB_RUN_ID, save_run_id, saved_run_id
from nslightning.loggers.wandb import BEST_VALUES, WandbLogger, wandb_logged_in

__all__ = [
    "BEST_VALUES",
    "WANDB_RUN_ID",
    "CSVLogger",
    "WandbLogger",
    "save_run_id",
    "saved_run_id",
    "wandb_logged_in",
]
