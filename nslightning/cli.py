"""The ``nslightning`` command: LightningCLI with the project's argument links."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from jsonargparse import Namespace
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from pytorch_lightning.loggers import WandbLogger
from pytorch_lightning.plugins.io import TorchCheckpointIO
from pytorch_lightning.utilities import rank_zero_info

import nslightning.callbacks
import nslightning.data
import nslightning.loggers
import nslightning.optim
import nslightning.samplers
import nslightning.tasks  # the imports register the classes for short names on the command line
from nslightning.callbacks.preemption import Preemption
from nslightning.checkpoint_io import AtomicCheckpointIO
from nslightning.run_folders import checkpoint_folders, latest_last_checkpoint, runs_folder
from nslightning.tasks.base import NegativeSamplingTask

WANDB_CONFIG_FILE = "lightning_config.yaml"


class SaveRunConfig(SaveConfigCallback):
    """Saves the resolved config beside the logs and, for a W&B run, into the run itself.

    The whole config (trainer, model, data, seed, ckpt_path) goes to the W&B run config under
    its top-level keys, and the YAML file to the run's files as ``lightning_config.yaml``.
    LightningCLI's own ``config.yaml`` lands in ``save_dir``, shared by every W&B run there, so
    it is overwritten rather than refused: a second run in the same folder does not fail (the
    config of each run stays in its W&B run).
    """

    def save_config(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if not trainer.is_global_zero:
            return
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                run = logger.experiment
                resolved = json.loads(json.dumps(self.config.as_dict(), default=str))
                run.config.update(resolved, allow_val_change=True)
                text = self.parser.dump(self.config, skip_none=False, skip_validation=True)
                Path(run.dir, WANDB_CONFIG_FILE).write_text(text, encoding="utf-8")


def continue_wandb_run(config: Namespace) -> None:
    """Gives a W&B logger without an ``id`` the run id saved in ``ckpt_path``'s checkpoint, so
    that the resumed training continues the same W&B run."""
    ckpt_path = config.get("ckpt_path")
    logger = config.get("trainer.logger")
    if not ckpt_path or not isinstance(logger, Namespace):
        return
    class_path = str(logger.get("class_path", ""))
    init_args = logger.get("init_args")
    if not class_path.endswith("WandbLogger") or init_args is None:
        return
    if init_args.get("id") or init_args.get("version"):
        return
    if str(ckpt_path) in ("best", "last", "hpc", "registry"):
        return  # Lightning resolves these names later
    run_id = nslightning.loggers.saved_run_id(str(ckpt_path))
    if run_id is not None:
        init_args["id"] = run_id


def resolve_last_checkpoint(config: Namespace) -> None:
    """Replaces ``--ckpt_path last`` by the newest ``last.ckpt`` of the earlier runs in the
    config's output folder or its ``ModelCheckpoint`` folders, or a newer SLURM ``hpc_ckpt``
    (each run has its own folder, so Lightning's own ``last``, which looks in the new run's
    folder, would find nothing). With none, the run starts afresh, so that a preemptible job
    can pass ``--ckpt_path last`` from its first start."""
    if config.get("ckpt_path") != "last":
        return
    trainer = config.get("trainer") or Namespace()
    folder = runs_folder(trainer)
    root = Path(str(trainer.get("default_root_dir") or Path.cwd()))
    found = latest_last_checkpoint(folder, checkpoint_folders(trainer), hpc_folder=root)
    if found is None:
        rank_zero_info(f"--ckpt_path last: no {folder}/*/checkpoints/last.ckpt yet; starting anew")
        config["ckpt_path"] = None
    else:
        rank_zero_info(f"--ckpt_path last: resuming from {found}")
        config["ckpt_path"] = str(found)


class NSLightningCLI(LightningCLI):
    """LightningCLI whose model receives its sizes from the DataModule.

    ``data.vocab_size`` goes to ``model.init_args.vocab_size``; a DataModule with anchors
    (``PairDataModule``) also passes ``num_anchors`` (ignored by tasks without it). With a W&B
    logger, ``--ckpt_path`` continues the checkpoint's W&B run and the resolved config is saved
    in the run (:class:`SaveRunConfig`). ``--ckpt_path last`` is the newest ``last.ckpt`` of
    the earlier runs (:func:`resolve_last_checkpoint`). Every trainer writes its checkpoints
    atomically (:class:`~nslightning.checkpoint_io.AtomicCheckpointIO`) and saves one and
    stops on SIGTERM or SIGUSR1 (:class:`~nslightning.callbacks.preemption.Preemption`).
    """

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        resolve_last_checkpoint(config)
        continue_wandb_run(config)

    def instantiate_trainer(self, **kwargs: Any) -> pl.Trainer:
        trainer = super().instantiate_trainer(**kwargs)
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        callbacks: list[pl.Callback] = trainer.callbacks  # type: ignore[attr-defined]
        if not any(isinstance(callback, Preemption) for callback in callbacks):
            callbacks.append(Preemption())
        return trainer

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments(
            "data.vocab_size", "model.init_args.vocab_size", apply_on="instantiate"
        )
        parser.link_arguments(
            "data.num_anchors", "model.init_args.num_anchors", apply_on="instantiate"
        )


def build_cli(
    args: Any = None, run: bool = True, parser_kwargs: dict[str, Any] | None = None
) -> NSLightningCLI:
    """The CLI over every task and DataModule (``class_path`` chooses them).

    Args:
        args: arguments instead of ``sys.argv[1:]`` (a list or a dict).
        run: run the subcommand; with ``False`` only parse and instantiate (no subcommand).
        parser_kwargs: LightningCLI's ``parser_kwargs``; the command line's come from
            :func:`nslightning.cli_errors.parser_kwargs`.
    """
    return NSLightningCLI(
        NegativeSamplingTask,
        pl.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        args=args,
        run=run,
        save_config_callback=SaveRunConfig,
        save_config_kwargs={"overwrite": True},
        parser_kwargs=parser_kwargs,
    )


def main(args: Any = None) -> None:
    """Runs ``nslightning fit|validate|test|predict -c CONFIG.yaml [--key value ...]``.

    From the command line (``args`` is None) an error ends with one line naming the problem,
    and exit code 2 (a bad config or option) or 1 (a run-time error); ``NSLIGHTNING_DEBUG=1``
    adds the traceback (:mod:`nslightning.cli_errors`). From Python, errors raise.

    Args:
        args: arguments instead of ``sys.argv[1:]`` (a list or a dict), for use from Python.
    """
    if args is not None:
        build_cli(args)
        return
    from nslightning.cli_errors import run_command_line

    run_command_line(build_cli)


if __name__ == "__main__":
    main()
