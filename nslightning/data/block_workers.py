"""Worker processes for the token store's passes: blocks of text in, small results out, in order.

Splitting text into tokens and looking them up is pure Python, so one process uses one core.
The passes hand each block to a pool of forked processes (the vocabulary and other context are
inherited, not sent) and read the results back in corpus order; at most two blocks per worker
are in flight, so memory stays bounded. Small corpora, a single usable CPU, or a platform
without ``fork`` use the calling process.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from multiprocessing.pool import AsyncResult
from pathlib import Path
from typing import Any, TypeVar

PARALLEL_BYTES = 32 << 20
"""Corpora smaller than this (bytes on disk) are read in the calling process."""
MAX_WORKERS = 8

Item = TypeVar("Item")
Result = TypeVar("Result")

_context: dict[str, Any] = {}


def context() -> dict[str, Any]:
    """What the pass gave :func:`map_blocks` (the vocabulary, the split, ...), in a worker."""
    return _context


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def worker_count(requested: int | None, paths: list[Path]) -> int:
    """How many processes read ``paths``: ``requested`` (``None``: one per usable CPU, at most
    :data:`MAX_WORKERS`), or 1 below :data:`PARALLEL_BYTES` or where ``fork`` is missing.

    Raises:
        ValueError: ``requested < 1``.
    """
    if requested is not None and requested < 1:
        raise ValueError(f"store_workers must be >= 1 or None (one per CPU), got {requested}.")
    if not sys.platform.startswith("linux"):  # fork is missing (Windows) or unsafe (macOS)
        return 1
    if sum(path.stat().st_size for path in paths) < PARALLEL_BYTES:
        return 1
    return requested if requested is not None else min(_usable_cpus(), MAX_WORKERS)


def map_blocks(
    function: Callable[[Item], Result], items: Iterable[Item], workers: int, **shared: Any
) -> Iterator[Result]:
    """``map(function, items)`` in ``workers`` forked processes, results in order.

    Args:
        function: a module-level function (workers find it by name); it reads ``shared``
            through :func:`context`.
        items: the blocks; read lazily, at most ``2 * workers`` ahead of the results.
        workers: processes; 1 runs ``function`` here.
        **shared: the context, inherited by the workers when they fork.
    """
    if workers <= 1:
        _context.update(shared)
        try:
            yield from map(function, items)
        finally:
            _context.clear()
        return
    fork = multiprocessing.get_context("fork")
    with fork.Pool(workers, initializer=_context.update, initargs=(shared,)) as pool:
        pending: deque[AsyncResult[Result]] = deque()
        for item in items:
            pending.append(pool.apply_async(function, (item,)))
            if len(pending) >= 2 * workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()
