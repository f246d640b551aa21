"""Worker processes for the token store's passes: blocks of text in, small results out, in order.

Splitting text into tokens and looking them up is pure Python, so one process uses one core.
The passes hand each block to a pool of forked processes (the vocabulary and other context are
inherited, not sent) and read the results back in corpus order; at most two blocks per worker
are in flight, so memory stays bounded. Small corpora, a single usable CPU, or a platform
without a safe ``fork`` (Windows, macOS) use the calling process.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import multiprocessing
import os
import signal
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

PARALLEL_BYTES = 32 << 20
"""Corpora smaller than this (bytes on disk) are read in the calling process."""
MAX_WORKERS = 8

Item = TypeVar("Item")
Result = TypeVar("Result")

log = logging.getLogger(__name__)
_PR_SET_PDEATHSIG = 1
_context: dict[str, Any] = {}


def context() -> dict[str, Any]:
    """What the pass gave :func:`map_blocks` (the vocabulary, the split, ...), in a worker."""
    return _context


def usable_cpus() -> int:
    """CPUs this process may use: its affinity, capped by a cgroup (container) CPU quota."""
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        count = os.cpu_count() or 1
    with contextlib.suppress(OSError, ValueError):
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            count = min(count, max(1, int(quota) // int(period)))
    return count


def check_workers(requested: int | None) -> None:
    """Raises ``ValueError`` unless ``requested`` is ``None`` or at least 1."""
    if requested is not None and requested < 1:
        raise ValueError(f"store_workers must be >= 1 or None (one per CPU), got {requested}.")


def worker_count(requested: int | None, paths: list[Path]) -> int:
    """How many processes read ``paths``: ``requested`` (``None``: one per usable CPU, at most
    :data:`MAX_WORKERS`), or 1 below :data:`PARALLEL_BYTES` or off Linux.

    Raises:
        ValueError: ``requested < 1``.
    """
    check_workers(requested)
    if not sys.platform.startswith("linux"):  # fork is missing (Windows) or unsafe (macOS)
        return 1
    if sum(path.stat().st_size for path in paths) < PARALLEL_BYTES:
        return 1
    return requested if requested is not None else min(usable_cpus(), MAX_WORKERS)


def _start_worker(shared: dict[str, Any], parent: int) -> None:
    # Ctrl-C reaches the whole process group: the parent alone handles it and ends the pool.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not a handler inherited from the parent
    with contextlib.suppress(OSError, AttributeError):  # die with the parent, even by SIGKILL
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died (interrupted while forking) before the prctl
        os._exit(0)
    _context.clear()
    _context.update(shared)


def _in_order(
    submit: Callable[[Item], Future[Result]], items: Iterable[Item], ahead: int
) -> Iterator[Result]:
    pending: deque[Future[Result]] = deque()
    for item in items:
        pending.append(submit(item))
        if len(pending) >= ahead:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


@contextlib.contextmanager
def map_blocks(
    function: Callable[[Item], Result], items: Iterable[Item], workers: int, **shared: Any
) -> Iterator[Iterator[Result]]:
    """``map(function, items)`` in ``workers`` forked processes, results in order::

        with map_blocks(encode, blocks, 2, index=vocabulary.index) as results:
            for result in results: ...

    Leaving the block (at the end, on an error or an interrupt) stops the workers. A worker
    that dies (killed for memory, say) is an error, not a hang.

    Args:
        function: a module-level function (workers find it by name); it reads ``shared``
            through :func:`context`.
        items: the blocks; read lazily, at most ``2 * workers`` ahead of the results.
        workers: processes; 1 runs ``function`` here.
        **shared: the context, inherited by the workers when they fork.
    """
    previous = dict(_context)
    if workers > 1:
        try:
            pool = ProcessPoolExecutor(
                workers, mp_context=multiprocessing.get_context("fork"),
                initializer=_start_worker, initargs=(shared, os.getpid()),
            )
        except OSError as error:  # no /dev/shm for the pool's queues, say
            log.warning("cannot start %d worker processes (%s); reading in this one", workers,
                        error)
            workers = 1
    if workers <= 1:
        _context.clear()
        _context.update(shared)
        try:
            yield map(function, items)
        finally:
            _context.clear()
            _context.update(previous)
        return
    gc.freeze()  # the heap the workers inherit stays shared: their collector leaves it alone
    try:
        yield _in_order(lambda item: pool.submit(function, item), items, 2 * workers)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        gc.unfreeze()
