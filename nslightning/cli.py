"""The ``nslightning`` command: LightningCLI with the project's argument links."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI

import nslightning.callbacks
import nslightning.data
import nslightning.optim
import nslightning.samplers
import nslightning.tasks  # noqa: F401 - registers the classes for short names on the command line


class NSLightningCLI(LightningCLI):
    """LightningCLI whose model receives its sizes from the DataModule.

    ``data.vocab_size`` goes to ``model.init_args.vocab_size``; a DataModule with anchors
    (``PairDataModule``) also passes ``num_anchors`` (ignored by tasks without it).
    """

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments(
            "data.vocab_size", "model.init_args.vocab_size", apply_on="instantiate"
        )
        parser.link_arguments(
            "data.num_anchors", "model.init_args.num_anchors", apply_on="instantiate"
        )


def build_cli(args: Any = None, run: bool = True) -> NSLightningCLI:
    """The CLI over every task and DataModule (``class_path`` chooses them).

    Args:
        args: arguments instead of ``sys.argv[1:]`` (a list or a dict).
        run: run the subcommand; with ``False`` only parse and instantiate (no subcommand).
    """
    return NSLightningCLI(
        pl.LightningModule,
        pl.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        args=args,
        run=run,
        save_config_kwargs={"overwrite": True},
    )


def main(args: Any = None) -> None:
    """Runs ``nslightning fit|validate|test|predict -c CONFIG.yaml [--key value ...]``.

    Args:
        args: arguments instead of ``sys.argv[1:]`` (a list or a dict), for use from Python.
    """
    build_cli(args)


if __name__ == "__main__":
    main()
