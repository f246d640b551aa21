"""Atomic file writes: readers see the old file or the complete new one, never half of it."""

from __future__ import annotations

import contextlib
import errno
import functools
import glob
import os
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

_UMASK_LOCK = threading.Lock()
_HOST = socket.gethostname().replace(".", "-").replace("/", "-") or "host"


def _umask_from_proc() -> int | None:
    """The umask as Linux reports it in ``/proc/self/status`` (kernel 4.7+), or ``None``."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _umask_by_setting() -> int:
    """The umask read by setting it and putting it back. ``os.umask`` is process-wide: another
    thread creating a file in between gets the temporary mask, so it is the strictest one."""
    with _UMASK_LOCK:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


@functools.cache
def current_umask() -> int:
    """The process's umask, read once (``/proc`` where it can, else set and restored)."""
    mask = _umask_from_proc()
    return mask if mask is not None else _umask_by_setting()


def new_file_mode() -> int:
    """The mode :func:`open` gives a new file: ``0o666`` less the umask.

    :func:`tempfile.mkstemp` creates files ``0o600``; files written under a temporary name and
    renamed get this mode instead, like every other file the run writes.
    """
    return 0o666 & ~current_umask()


def set_new_file_mode(fd: int, name: str | os.PathLike[str]) -> None:
    """Gives the open file ``fd`` (named ``name``) the mode of a newly opened file."""
    if hasattr(os, "fchmod"):
        os.fchmod(fd, new_file_mode())
    else:  # Windows before Python 3.13
        os.chmod(name, new_file_mode())


def temporary_prefix(target: Path) -> str:
    """The start of the names of ``target``'s temporary files written by this process:
    ``.<name>.<host>-<pid>.``, so that a later writer can tell a dead writer's leftovers."""
    return f".{target.name}.{_HOST}-{os.getpid()}."


def remove_stale_temporaries(target: Path) -> None:
    """Removes ``target``'s temporary files left by writers of this host that are no longer
    running (killed before they could clean up). Temporaries of live processes and of other
    hosts (a shared file system) are left alone."""
    if os.name == "nt":  # os.kill(pid, 0) would end the process there
        return
    mine = f".{target.name}.{_HOST}-"
    for stale in target.parent.glob(f"{glob.escape(mine)}*.tmp"):
        pid = stale.name[len(mine) :].split(".", 1)[0]
        if pid.isdigit() and not _running(int(pid)):
            stale.unlink(missing_ok=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _commit_without_replacing(tmp_name: str, target: Path) -> None:
    """Gives the temporary file ``target``'s name unless ``target`` exists: a hard link, which
    never replaces; on a file system without hard links, a check then a rename (a writer that
    commits between the two is replaced)."""
    try:
        os.link(tmp_name, target)
    except FileExistsError as error:
        raise FileExistsError(error.errno, f"{target} exists", str(target)) from None
    except OSError:  # no hard links here (FAT, some network or FUSE file systems)
        if target.exists():
            raise FileExistsError(errno.EEXIST, f"{target} exists", str(target)) from None
        os.replace(tmp_name, target)
        return
    os.unlink(tmp_name)


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike[str], mode: str = "w", replace: bool = True, **open_kwargs: Any
) -> Iterator[IO[Any]]:
    """Opens a temporary file beside ``path``; on success it replaces ``path`` in one step.

    On an exception the temporary file is removed and ``path`` is left as it was; the
    temporaries of earlier writers killed before they could remove theirs are removed first
    (:func:`remove_stale_temporaries`). The file gets the mode :func:`open` would give it
    (``0o666`` less the umask), not ``mkstemp``'s ``0o600``.

    Args:
        path: destination file; its folder is created if missing.
        mode: ``"w"`` (text) or ``"wb"`` (binary).
        replace: replace an existing ``path``; with ``False`` an existing one raises
            ``FileExistsError`` at the commit (a hard link, which never replaces), so that
            two writers cannot overwrite each other.
        **open_kwargs: passed to :func:`open` (e.g. ``encoding``).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write supports modes 'w' and 'wb', got {mode!r}.")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    fd, tmp_name = tempfile.mkstemp(
        prefix=temporary_prefix(target), suffix=".tmp", dir=target.parent
    )
    try:
        with os.fdopen(fd, mode, **open_kwargs) as handle:
            yield handle
            handle.flush()
            set_new_file_mode(handle.fileno(), tmp_name)
            os.fsync(handle.fileno())
        if replace:
            os.replace(tmp_name, target)
        else:
            _commit_without_replacing(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
