"""What every task reads from its DataModule: the vocabulary's size, its counts, its tables."""

from __future__ import annotations

from typing import Any, Protocol

from torch import Tensor

from nslightning.data.vocabulary import Vocabulary

MEMBERS = ("vocab_size", "counts", "vocabularies")


class NegativeSamplingData(Protocol):
    """The DataModule side of a task (every nslightning DataModule implements it).

    Attributes:
        vocab_size: ``V``, the number of ids negatives are drawn from (words, tokens, items);
            the CLI links it to the task's ``vocab_size``.
        counts: ``(V,)`` non-negative frequencies of the ids in the training data, which the
            samplers' distributions are built from (``sampler.setup(counts)``).
    """

    @property
    def vocab_size(self) -> int: ...

    @property
    def counts(self) -> Tensor: ...

    def vocabularies(self) -> dict[str, Vocabulary]:
        """The vocabulary of each of the task's embedding tables, by the names of the task's
        ``embedding_tables()`` (checkpoint fingerprints, export)."""
        ...


def missing_members(datamodule: Any, members: tuple[str, ...] = MEMBERS) -> list[str]:
    """The ``members`` (those of :class:`NegativeSamplingData` by default) that ``datamodule``
    lacks.

    Read from the class and the instance's own attributes, so that no property (which may read
    a corpus) is evaluated.
    """
    return [name for name in members if not has_member(datamodule, name)]


def has_member(datamodule: Any, name: str) -> bool:
    """Whether ``datamodule`` defines ``name`` on its class or sets it on itself, without
    evaluating a property."""
    return hasattr(type(datamodule), name) or name in getattr(datamodule, "__dict__", {})


def task_data(trainer: Any, task: str, required: bool = True) -> NegativeSamplingData | None:
    """The trainer's DataModule as a :class:`NegativeSamplingData`.

    Args:
        trainer: the task's trainer (or ``None``).
        task: the task's class name, for the messages.
        required: raise when there is no DataModule; otherwise return ``None``.

    Raises:
        RuntimeError: no DataModule while ``required``, or one without every member, naming
            the missing ones.
    """
    datamodule = getattr(trainer, "datamodule", None)
    if datamodule is None:
        if required:
            raise RuntimeError(
                f"{task} needs a DataModule with vocab_size, counts and vocabularies() (every "
                "nslightning DataModule has them): pass datamodule= to Trainer.fit."
            )
        return None
    missing = missing_members(datamodule)
    if missing:
        raise RuntimeError(
            f"{task} cannot train with {type(datamodule).__name__}: it lacks "
            f"{', '.join(missing)}. A DataModule for a task gives vocab_size, counts (V,) and "
            "vocabularies() (nslightning.data.NegativeSamplingData)."
        )
    return datamodule
