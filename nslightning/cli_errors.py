"""How the ``nslightning`` command reports an error: one last line that names the problem.

LightningCLI (jsonargparse) reports a bad option with the 50-line usage and a nested
``Does not validate against any of the Union subtypes`` message, and a constructor's
``ValueError`` as a traceback whose last lines repeat the whole config. From the command line
(:func:`run_command_line`, called by :func:`nslightning.cli.main`) every error ends instead
with one line::

    nslightning: error: dim must be >= 1, got -5; 100-300 is usual for word vectors.

Exit codes:

- ``2`` (:data:`EXIT_CONFIG`): the config or the command line is wrong: a parse error (unknown
  option or class, a value of the wrong type, a missing config file) or an exception raised
  while LightningCLI instantiates the classes (a constructor's check, a DataModule that cannot
  read its corpus to learn the vocabulary size). Nothing has run.
- ``1`` (:data:`EXIT_RUN`): an error while the subcommand runs, or while the checkpoint of
  ``--ckpt_path`` is read (a truncated or unreadable checkpoint, one of another vocabulary).

The line holds the project's own message: the exception chain (``__cause__``/``__context__``,
which jsonargparse keeps when it wraps a constructor's exception) is followed to the first
exception raised outside jsonargparse, argparse and LightningCLI. When there is none, it was
jsonargparse's own parse error; then the line is rebuilt from the chain's parts (the option's
key, the class, the root message) with a "did you mean" suggestion (:mod:`difflib`) for a
misspelled option or class.

``NSLIGHTNING_DEBUG=1`` prints the traceback above that line. A run-time error says so on the
line before it (``nslightning: set NSLIGHTNING_DEBUG=1 for the traceback``); a config error
does not, as its traceback shows only jsonargparse's internals. An exception that is not an
expected kind of user error (say an ``AttributeError``: a bug) always prints its traceback.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import inspect
import os
import pickle
import re
import signal
import sys
import traceback
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import jsonargparse
from jsonargparse import DefaultHelpFormatter
from lightning_fabric.utilities.exceptions import MisconfigurationException
from pytorch_lightning import cli as lightning_cli
from pytorch_lightning.utilities.exceptions import SIGTERMException

from nslightning.callbacks.preemption import Preempted

PROG = "nslightning"
DEBUG_ENV = "NSLIGHTNING_DEBUG"
EXIT_CONFIG = 2
EXIT_RUN = 1
DEBUG_HINT = f"{PROG}: set {DEBUG_ENV}=1 for the traceback"

#: Exceptions that report a problem with the user's input or files; any other kind is a bug.
USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,  # also UnicodeDecodeError
    TypeError,
    OSError,  # FileNotFoundError, PermissionError, IsADirectoryError, ...
    RuntimeError,  # torch: checkpoint reading, state_dict size mismatches, out of memory
    EOFError,
    ImportError,
    pickle.UnpicklingError,
    zipfile.BadZipFile,
    MisconfigurationException,
    argparse.ArgumentError,
)

#: Where a class name is looked up when the error does not say which base class it needed.
_USUAL_BASES = (
    "nslightning.tasks.NegativeSamplingTask",
    "pytorch_lightning.LightningModule",
    "pytorch_lightning.LightningDataModule",
    "nslightning.samplers.NegativeSampler",
)

#: LightningCLI's steps that read the config and build the classes: an error there is exit 2.
CONFIG_STEPS = frozenset({"parse_arguments", "instantiate_classes"})

_WRAPPER_FILES = (
    str(Path(jsonargparse.__file__).parent),
    str(Path(argparse.__file__)),
    str(Path(lightning_cli.__file__)),
    "<frozen importlib",
)


_TORCH_SERIALIZATION = os.path.join("torch", "serialization.py")


@dataclass(frozen=True)
class Report:
    """What the command prints for an exception, and its exit code."""

    message: str
    exit_code: int
    internal: bool = False  # a bug: the traceback is always printed

    @property
    def line(self) -> str:
        return f"{PROG}: error: {self.message}"


# ------------------------------------------------------------------------ the entry point
def parser_kwargs() -> dict[str, Any]:
    """LightningCLI's ``parser_kwargs`` for the command line: parse errors raise (instead of
    printing the usage and exiting) so that :func:`run_command_line` reports them, and each
    subcommand's ``--help`` ends by saying how to see the task's and DataModule's options."""
    kwargs: dict[str, Any] = {"exit_on_error": False, "formatter_class": HelpFormatter}
    for subcommand in lightning_cli.LightningCLI.subcommands():
        kwargs[subcommand] = {"epilog": help_footer(subcommand)}
    return kwargs


def run_command_line(build: Callable[..., object], args: Any = None) -> None:
    """Runs ``build(args, parser_kwargs=...)``; an exception becomes one line on stderr and
    ``SystemExit`` with :data:`EXIT_CONFIG` or :data:`EXIT_RUN` (see the module). A run stopped
    by a signal exits with ``128 +`` its number: SIGTERM or SIGUSR1 after saving a checkpoint
    (:class:`~nslightning.callbacks.preemption.Preempted`), SIGTERM before training started,
    Ctrl-C."""
    try:
        build(args, parser_kwargs=parser_kwargs())
    except Preempted as stop:  # a checkpoint was saved: not an error
        stop_with(f"{PROG}: {stop}", stop.exit_code)
    except SIGTERMException:  # Lightning's, before training started: nothing was saved
        stop_with(f"{PROG}: stopped by SIGTERM before training started; nothing was saved.",
                  128 + signal.SIGTERM)
    except KeyboardInterrupt:
        if debug_enabled():
            raise
        stop_with(f"\n{PROG}: interrupted (Ctrl-C); nothing was saved since the last "
                  "checkpoint.", 128 + signal.SIGINT)
    except Exception as error:  # every error is reported, then exits non-zero
        report = describe(error)
        sys.stdout.flush()
        if debug_enabled() or report.internal:
            traceback.print_exception(error, file=sys.stderr)
        elif report.exit_code == EXIT_RUN:
            print(DEBUG_HINT, file=sys.stderr)
        stop_with(report.line, report.exit_code)


def stop_with(last_line: str, exit_code: int) -> NoReturn:
    """Prints ``last_line`` as stderr's last line (after what stdout holds) and exits."""
    sys.stdout.flush()
    print(last_line, file=sys.stderr, flush=True)
    raise SystemExit(exit_code) from None


def debug_enabled() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


# ------------------------------------------------------------------------ the report
def describe(error: BaseException) -> Report:
    """The one-line report and exit code of an exception raised by the CLI."""
    chain = list(cause_chain(error))
    config = isinstance(error, argparse.ArgumentError) or in_config_step(error)
    exit_code = EXIT_CONFIG if config else EXIT_RUN
    own = project_error(chain)
    if own is None:  # jsonargparse's own parse (or validation) error
        return Report(describe_parse_error(chain), exit_code)
    checkpoint = checkpoint_being_read(chain)
    if checkpoint is not None and isinstance(own, USER_ERRORS):
        reason = one_line(own).split(". ")[0].rstrip(".")
        message = (
            f"cannot read checkpoint {checkpoint} ({reason}): it is truncated, damaged or not "
            "a checkpoint; give another --ckpt_path (e.g. an earlier or the last one saved)."
        )
        return Report(message, exit_code)
    if not isinstance(own, USER_ERRORS):
        message = (
            f"internal error, {type(own).__name__}: {one_line(own)} (please report it with "
            "the traceback above)"
        )
        return Report(message, EXIT_RUN, internal=True)
    return Report(one_line(own), exit_code)


def cause_chain(error: BaseException) -> Iterator[BaseException]:
    """``error``, then the exception it was raised from (``__cause__``, else the one being
    handled, ``__context__``, unless suppressed), and so on."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        if current.__cause__ is not None:
            current = current.__cause__
        elif current.__suppress_context__:
            current = None
        else:
            current = current.__context__


def raised_in(error: BaseException) -> str | None:
    """The file of the frame that raised ``error``."""
    frames = traceback.extract_tb(error.__traceback__) if error.__traceback__ else []
    return frames[-1].filename if frames else None


def project_error(chain: Sequence[BaseException]) -> BaseException | None:
    """The first exception of the chain raised outside jsonargparse, argparse and LightningCLI
    (a wrapper repeats the message of the exception it wraps, with the config around it)."""
    for error in chain:
        filename = raised_in(error)
        if filename is not None and not filename.startswith(_WRAPPER_FILES):
            return error
    return None


def in_config_step(error: BaseException) -> bool:
    """Whether ``error`` was raised while LightningCLI parsed the config or instantiated the
    classes (:data:`CONFIG_STEPS`), rather than while reading the checkpoint or running."""
    for frame, _ in traceback.walk_tb(error.__traceback__):
        if frame.f_code.co_name in CONFIG_STEPS and isinstance(
            frame.f_locals.get("self"), lightning_cli.LightningCLI
        ):
            return True
    return False


def checkpoint_being_read(chain: Sequence[BaseException]) -> str | None:
    """The file ``torch.load`` was reading when an exception of the chain was raised."""
    for error in chain:
        for frame, _ in traceback.walk_tb(error.__traceback__):
            code = frame.f_code
            if code.co_name == "load" and code.co_filename.endswith(_TORCH_SERIALIZATION):
                source = frame.f_locals.get("f")
                source = getattr(source, "name", source)  # an open file names its path
                if isinstance(source, (str, os.PathLike)):
                    return os.fspath(source)
    return None


def one_line(error: BaseException) -> str:
    """The exception's message on one line (a ``KeyError`` or an empty one names its type)."""
    text = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    if not text or isinstance(error, KeyError):
        return f"{type(error).__name__}: {text}".rstrip(": ")
    return text


# ------------------------------------------------------------------------ parse errors
_PARSER_KEY = re.compile(r'^Parser key "([^"]+)":')
_CLASS_PATH = re.compile(r"^Problem with given class_path '([^']+)':")
_SUBTYPES = re.compile(r"Subtypes: \[<class '([^']+)'>")
_CLASS_OPTION = re.compile(r"^Option '([^']+)' is not accepted$")
_OTHER_OPTION = re.compile(
    r"(?:does not accept option|Option) '([^']+)'(?: is not accepted before subcommand)?"
)
_NO_ATTRIBUTE = re.compile(r"^module '([^']+)' has no attribute '([^']+)'")
_NOT_A_CLASS = re.compile(
    r"^(?:Expected a dot import path string|Unexpected import path format): (\S+)"
)
_NO_MODULE = re.compile(r"^No module named '([^']+)'")
_UNRECOGNIZED = re.compile(r"^unrecognized arguments: (.*)", re.IGNORECASE)
_HELP_KEY = re.compile(r"^--(\S+)\.help: ")
_TYPE_NAME = re.compile(r"<class '(?:builtins\.)?([^']+)'>")


def describe_parse_error(chain: Sequence[BaseException]) -> str:
    """One line for a jsonargparse error, rebuilt from the messages of its chain."""
    firsts = [str(error).strip().splitlines()[0] if str(error).strip() else "" for error in chain]
    keys: list[str] = []
    classes: list[str] = []
    for first in firsts:
        if (match := _PARSER_KEY.match(first)) and (not keys or keys[-1] != match[1]):
            keys.append(match[1])
        if match := _CLASS_PATH.match(first):
            classes.append(match[1])
    key = ".".join(keys)
    root = chain[-1]
    root_text = str(root).strip()

    if classes and _is_lightning_base(classes[-1]):
        option = _CLASS_OPTION.match(root_text) or _UNRECOGNIZED.match(root_text)
        if option:
            return class_first(key, option[1].split()[0].lstrip("-").split("=")[0])
    if (match := _CLASS_OPTION.match(root_text)) and classes:
        return unknown_class_option(key, match[1], classes[-1])
    if match := _NO_ATTRIBUTE.match(root_text):
        return unknown_class(key, f"{match[1]}.{match[2]}", base_class(chain))
    if match := _NOT_A_CLASS.match(root_text):
        if not key and (help_key := _HELP_KEY.match(firsts[0])):
            key = help_key[1]  # --model.help NAME
        return unknown_class(key, match[1], base_class(chain))
    if (match := _NO_MODULE.match(root_text)) and classes:
        return unknown_class(key, classes[-1], base_class(chain))
    if match := _OTHER_OPTION.search(root_text):
        return unknown_option(match[1], option_keys(chain))
    if match := _UNRECOGNIZED.match(root_text):
        flags = [token for token in match[1].split() if token.startswith("-")]
        if flags:
            return unknown_option(flags[0].lstrip("-").split("=")[0], option_keys(chain))
    message = " ".join(line.strip() for line in root_text.splitlines() if line.strip())
    message = _TYPE_NAME.sub(r"\1", message).replace("Expected a ", "expected ")
    if key and key not in message:
        return f"invalid value for --{key}: {message}"
    return message


def unknown_class_option(key: str, option: str, class_path: str) -> str:
    """A misspelled init argument of a class given by ``class_path``."""
    flag = f"--{key}.{option}" if key else f"--{option}"
    name = class_path.rsplit(".", 1)[-1]
    names = init_parameters(class_path)
    guess = difflib.get_close_matches(option, names, n=1, cutoff=0.6)
    if guess:
        fix = f"--{key}.{guess[0]}" if key else f"--{guess[0]}"
        return f"unknown option {flag}: {name} has no parameter {option!r}; did you mean {fix}?"
    listed = ", ".join(names) if names else "none"
    return f"unknown option {flag}: {name} has no parameter {option!r}; its options are {listed}."


def class_first(key: str, option: str) -> str:
    """An option of ``--model`` or ``--data`` given before the class that takes it."""
    example = {"model": "SkipGramTask", "data": "SkipGramDataModule"}.get(key, "CLASS")
    return (
        f"--{key}.{option} comes before a class for --{key}: choose it first (-c CONFIG.yaml "
        f"or --{key} {example}), then give --{key}.{option} after it."
    )


def _is_lightning_base(class_path: str) -> bool:
    import pytorch_lightning as pl

    from nslightning.tasks.base import NegativeSamplingTask

    return import_class(class_path) in (
        NegativeSamplingTask, pl.LightningModule, pl.LightningDataModule
    )


def unknown_class(key: str, given: str, base: str | None) -> str:
    """A class name or path that names no class (nor a config file)."""
    where = f" for --{key}" if key else ""
    if "/" in given or given.endswith((".yaml", ".yml", ".json")):
        return f"{given}{where} is neither a readable config file nor a class name; check the path."
    if base is not None:
        known = known_subclasses(base)
    else:  # --model.help NAME names no base class: offer the classes of the usual ones
        known = {}
        for usual in _USUAL_BASES:
            known.update(known_subclasses(usual))
    name = given.rsplit(".", 1)[-1]
    guess = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    if guess:
        fix = _spell_like(given, guess[0], known)
        return f"unknown class {given!r}{where}; did you mean {fix}?"
    listed = ", ".join(sorted(known)) if known else "none found"
    return f"unknown class {given!r}{where}; known classes: {listed}."


def _spell_like(given: str, name: str, known: dict[str, str]) -> str:
    """``name`` as a short name when ``given`` was short, else as an import path."""
    if "." not in given:
        return name
    module = given.rsplit(".", 1)[0]
    try:
        if hasattr(importlib.import_module(module), name):
            return f"{module}.{name}"
    except ImportError:
        pass
    return known[name]


def unknown_option(option: str, keys: Sequence[str]) -> str:
    """A misspelled option outside a class (``--trainer.max_epoch``, ``--modle.dim``)."""
    parts = [part for part in option.split(".") if part not in ("init_args", "dict_kwargs")]
    flag = "--" + ".".join(parts)
    guess = suggest_key(parts, keys)
    if guess is not None:
        return f"unknown option {flag}; did you mean --{guess}?"
    return f"unknown option {flag}; see {PROG} SUBCOMMAND --help for the options."


def suggest_key(parts: Sequence[str], keys: Sequence[str]) -> str | None:
    """The known key closest to ``parts``, one dotted level at a time (None: no close one)."""
    split_keys = [key.split(".") for key in keys]
    fixed: list[str] = []
    changed = False
    for level, part in enumerate(parts):
        here = {k[level] for k in split_keys if len(k) > level and k[:level] == fixed}
        if not here:  # below a subclass-mode key (model, data): keep the rest as given
            fixed.extend(parts[level:])
            break
        if part not in here:
            guess = difflib.get_close_matches(part, sorted(here), n=1, cutoff=0.6)
            if not guess:
                return None
            part, changed = guess[0], True
        fixed.append(part)
    return ".".join(fixed) if changed else None


def option_keys(chain: Sequence[BaseException]) -> list[str]:
    """The option keys (``dest``) of the parsers in the chain's tracebacks."""
    parsers: list[jsonargparse.ArgumentParser] = []
    for error in chain:
        parser = getattr(error, "subcommand_parser", None)
        if isinstance(parser, jsonargparse.ArgumentParser):
            parsers.append(parser)
        for frame, _ in traceback.walk_tb(error.__traceback__):
            candidate = frame.f_locals.get("self")
            if isinstance(candidate, jsonargparse.ArgumentParser):
                parsers.append(candidate)
    keys: dict[str, None] = {}
    for parser in parsers:
        for action in parser._actions:
            dest = action.dest
            if dest and dest != argparse.SUPPRESS and dest.rsplit(".", 1)[-1] != "help":
                keys[dest] = None
    return list(keys)


def base_class(chain: Sequence[BaseException]) -> str | None:
    """The class the bad value should have been a subclass of (innermost ``Subtypes:``)."""
    for error in reversed(chain):
        if match := _SUBTYPES.search(str(error)):
            return match[1]
    return None


def import_class(path: str) -> type | None:
    module, _, name = path.rpartition(".")
    try:
        found = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return None
    return found if isinstance(found, type) else None


def known_subclasses(base_path: str) -> dict[str, str]:
    """Public subclasses of ``base_path`` that are imported: short name -> import path."""
    base = import_class(base_path)
    if base is None:
        return {}
    found: dict[str, str] = {}
    pending: list[type] = list(base.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        names = [cls.__name__, *cls.__module__.split(".")]
        if any(name.startswith("_") for name in names):
            continue
        found.setdefault(cls.__name__, f"{cls.__module__}.{cls.__qualname__}")
    return found


def init_parameters(class_path: str) -> list[str]:
    """The init arguments of a class, as jsonargparse offers them."""
    cls = import_class(class_path)
    if cls is None:
        return []
    try:
        parameters = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return []
    skip = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return [p.name for p in parameters if p.name != "self" and p.kind not in skip]


# ------------------------------------------------------------------------ help
def help_footer(subcommand: str) -> str:
    """The end of ``nslightning SUBCOMMAND --help``: how to see the options of the classes
    that ``--model`` and ``--data`` choose (subclass mode lists only their names)."""
    tasks, datamodules = _task_and_datamodule_names()
    prog = f"{PROG} {subcommand}"
    return "\n".join(
        [
            "The task's and the DataModule's own options are listed per class:",
            f"  {prog} --model.help {tasks[0]}    (or {', '.join(tasks[1:])})",
            f"  {prog} --data.help {datamodules[0]}    (or {', '.join(datamodules[1:])})",
            "a class inside them, e.g. the sampler, once --model has chosen the task:",
            f"  {prog} --model {tasks[0]} --model.sampler.help UnigramSampler",
            "and the whole resolved config:",
            f"  {prog} -c CONFIG.yaml --print_config",
        ]
    )


def _task_and_datamodule_names() -> tuple[list[str], list[str]]:
    import pytorch_lightning as pl

    import nslightning.data
    import nslightning.tasks

    def public(module: Any, base: type) -> list[str]:
        names = [
            name
            for name in module.__all__
            if isinstance(getattr(module, name), type) and issubclass(getattr(module, name), base)
            and not inspect.isabstract(getattr(module, name))  # the tasks' base is no choice
        ]
        return sorted(names, key=lambda name: (not name.startswith("SkipGram"), name))

    return public(nslightning.tasks, pl.LightningModule), public(
        nslightning.data, pl.LightningDataModule
    )


class HelpFormatter(DefaultHelpFormatter):
    """jsonargparse's help formatter that keeps the line breaks of :func:`help_footer`."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith("The task's and the DataModule's own options"):
            return "\n".join(indent + line for line in text.splitlines())
        return super()._fill_text(text, width, indent)
