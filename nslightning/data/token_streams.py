"""Contiguous token streams cut into windows for truncated back-propagation through time."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import IterableDataset


@dataclass
class TokenWindow:
    """One step of every stream: ``targets`` are ``inputs`` shifted by one token.

    Attributes:
        inputs: ``(B, T)`` long ids.
        targets: ``(B, T)`` long ids, the next token of each input.
    """

    inputs: Tensor
    targets: Tensor

    @property
    def num_tokens(self) -> int:
        """Predicted tokens in the window (read by the ``Throughput`` callback)."""
        return self.targets.numel()


class TokenStreams(IterableDataset[TokenWindow]):
    """A text cut into parallel streams, served window after window in order.

    The ``T`` ids are cut into ``num_streams`` contiguous streams of ``L = T // num_streams``
    ids (the last ``T mod num_streams`` ids are dropped); stream ``i`` is row ``i`` of every
    window, so a model that carries its state from one window to the next reads each stream
    straight through. Window ``j`` holds ids ``j·bptt .. j·bptt + bptt`` of each stream as
    inputs and the ids one further on as targets; the last window may be shorter.

    With several processes, rank ``r`` of ``world_size`` serves streams
    ``r·B .. (r + 1)·B - 1`` of ``B·world_size`` (``B`` = ``batch_size``): disjoint text.

    Args:
        ids: ``(T,)`` integer ids: a tensor, or an array such as a slice of a token store's
            memory map (each window is copied out of it as int64).
        batch_size: ``B``, streams per process.
        bptt: window length.
        rank: this process's rank.
        world_size: number of processes.
        name: the split's name, for error messages.

    Raises:
        ValueError: the text is shorter than one window, or too short for ``B·world_size``
            streams of one window each.
    """

    def __init__(
        self,
        ids: Tensor | np.ndarray,
        batch_size: int,
        bptt: int,
        rank: int = 0,
        world_size: int = 1,
        name: str = "text",
    ) -> None:
        if batch_size < 1 or bptt < 1:
            raise ValueError(f"batch_size and bptt must be >= 1, got {batch_size} and {bptt}.")
        array = ids.numpy() if isinstance(ids, Tensor) else ids
        total = int(array.shape[0])
        window = bptt + 1
        if total < window:
            raise ValueError(
                f"the {name} split has {total} tokens, shorter than one bptt window of "
                f"{window} (bptt={bptt} inputs and their next tokens); lower --data.bptt or "
                "use a longer text."
            )
        streams = batch_size * world_size
        length = total // streams
        if length < window:
            raise ValueError(
                f"the {name} split has {total} tokens: {streams} streams "
                f"(batch size {batch_size} x {world_size} process(es)) of bptt + 1 = {window} "
                f"tokens need {streams * window}; lower the batch size or bptt, or use a "
                "longer text."
            )
        self.bptt = bptt
        self._skip = 0
        self.streams = array[: streams * length].reshape(streams, length)[
            rank * batch_size : (rank + 1) * batch_size
        ]

    def __len__(self) -> int:
        return -(-(self.streams.shape[1] - 1) // self.bptt)

    def resume(self, windows_done: int) -> None:
        """The next pass starts after its first ``windows_done`` windows (a run resumed from a
        checkpoint saved part-way through an epoch); later passes start at the beginning."""
        self._skip = int(windows_done)

    def __iter__(self) -> Iterator[TokenWindow]:
        last = self.streams.shape[1] - 1
        skip, self._skip = self._skip, 0
        for start in range(skip * self.bptt, last, self.bptt):
            stop = min(start + self.bptt, last)
            rows = torch.from_numpy(self.streams[:, start : stop + 1].astype(np.int64))
            yield TokenWindow(rows[:, :-1], rows[:, 1:])
