"""Samplers for the DDP equivalence tests: under DDP each rank records what it drew; one process
then replays the ranks' draws for the concatenated batch, so that the two runs train on the
same negatives and any difference in their updates comes from the task's wiring.

Used from YAML (``--model.sampler sampler.yaml``), as users configure samplers:

.. code-block:: yaml

    class_path: tests.distributed.recorded_draws.RecordedUnigramSampler
    init_args: {folder: draws, mode: record}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from nslightning.distributed import rank
from nslightning.samplers.base import Negatives, NegativeSampler, Scorer
from nslightning.samplers.log_uniform import LogUniformSampler
from nslightning.samplers.unigram import UnigramSampler

Mode = Literal["record", "replay"]


class DrawLog(NegativeSampler):
    """Records every ``sample`` call to ``FOLDER/rank{R}.pt`` (``R``: the process's rank in the
    process group, not the sampler's own), or replays such files.

    A replayed call of ``n`` rows takes the ranks' oldest unreplayed calls, rank by rank, until
    it has ``n`` rows, and gives each of its rows the draw of the recorded row with the same
    ``(positive, anchor)``, in order among equal keys: the rows of one process's batch are the
    ranks' rows in another order. That is exact when rows with equal keys keep their order
    (contrastive pairs are distinct; skip-gram's rows keep theirs with one update per batch and
    windows of one reach, as in the tests); otherwise draws could be swapped between rows with
    the same key, and the comparison would fail, not pass.
    """

    def log_draws(self, folder: str, mode: Mode) -> None:
        if mode not in ("record", "replay"):
            raise ValueError(f"mode must be record or replay, got {mode!r}.")
        self.folder = Path(folder)
        self.mode = mode
        self.calls: list[dict[str, Any]] = []
        self.queues: list[list[dict[str, Any]]] | None = None

    def sample(
        self,
        positives: Tensor,
        num_negatives: int,
        *,
        anchors: Tensor | None = None,
        scorer: Scorer | None = None,
        exclude: Tensor | None = None,
    ) -> Negatives:
        keys = row_keys(positives, anchors)
        if self.mode == "replay":
            return self.replay(keys)
        drawn = super().sample(
            positives, num_negatives, anchors=anchors, scorer=scorer, exclude=exclude
        )
        self.calls.append({"keys": keys, "ids": drawn.ids.cpu(), "mask": drawn.mask.cpu(),
                           "log_q": None if drawn.log_q is None else drawn.log_q.cpu()})
        self.folder.mkdir(parents=True, exist_ok=True)
        torch.save({"sampler_rank": self.rank, "calls": self.calls},
                   self.folder / f"rank{rank()}.pt")
        return drawn

    def replay(self, keys: Tensor) -> Negatives:
        if self.queues is None:
            files = sorted(self.folder.glob("rank*.pt"), key=lambda path: int(path.stem[4:]))
            self.queues = [torch.load(path)["calls"] for path in files]
        if len(keys) == 0:
            raise AssertionError("replay: a call without rows (the runs drew differently).")
        taken: list[dict[str, Any]] = []
        for queue in self.queues:
            if sum(len(call["keys"]) for call in taken) < len(keys) and queue:
                taken.append(queue.pop(0))
        recorded = torch.cat([call["keys"] for call in taken]) if taken else keys[:0]
        order = match_rows(keys, recorded)
        log_q = [call["log_q"] for call in taken]
        return Negatives(
            ids=torch.cat([call["ids"] for call in taken])[order],
            log_q=None if log_q[0] is None else torch.cat(log_q)[order],
            mask=torch.cat([call["mask"] for call in taken])[order],
        )


def row_keys(positives: Tensor, anchors: Tensor | None) -> Tensor:
    """``(n, 2)`` each row's ``(positive, anchor)`` (the positive twice without anchors)."""
    if positives.dim() != 1:
        raise ValueError(f"recorded draws need (n,) positives, got {tuple(positives.shape)}.")
    second = positives if anchors is None else anchors
    return torch.stack([positives, second], dim=1).cpu()


def match_rows(keys: Tensor, recorded: Tensor) -> Tensor:
    """``(n,)`` for each row of ``keys``, the first unused row of ``recorded`` with that key."""
    if len(keys) != len(recorded):
        raise AssertionError(
            f"replay: this call has {len(keys)} rows, the ranks' calls {len(recorded)}."
        )
    unused: dict[tuple[int, int], list[int]] = {}
    for index, key in enumerate(recorded.tolist()):
        unused.setdefault(tuple(key), []).append(index)
    order = []
    for key in keys.tolist():
        rows = unused.get(tuple(key))
        if not rows:
            raise AssertionError(f"replay: no recorded row for (positive, anchor) {key}.")
        order.append(rows.pop(0))
    return torch.tensor(order, dtype=torch.int64)


class RecordedUnigramSampler(DrawLog, UnigramSampler):
    """:class:`~nslightning.samplers.UnigramSampler` whose draws are recorded or replayed.

    Args:
        folder: where the ranks' files are.
        mode: ``record`` (under DDP) or ``replay`` (one process).
        power: the unigram power.
        seed: base seed (rank ``r`` uses ``seed + r``).
    """

    def __init__(self, folder: str, mode: Mode = "record", power: float = 0.75,
                 seed: int = 0) -> None:
        UnigramSampler.__init__(self, power=power, seed=seed)
        self.log_draws(folder, mode)


class RecordedLogUniformSampler(DrawLog, LogUniformSampler):
    """:class:`~nslightning.samplers.LogUniformSampler` whose draws are recorded or replayed.

    Args:
        folder: where the ranks' files are.
        mode: ``record`` (under DDP) or ``replay`` (one process).
        seed: base seed (rank ``r`` uses ``seed + r``).
    """

    def __init__(self, folder: str, mode: Mode = "record", seed: int = 0) -> None:
        LogUniformSampler.__init__(self, seed=seed)
        self.log_draws(folder, mode)
