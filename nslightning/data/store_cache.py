"""Token stores in the cache folder: keyed by corpus and settings, built once, under a lock.

A store's name is a hash of what determines its content: the corpus files (paths, sizes,
modification times) and the vocabulary settings or file. A changed file therefore gets a new
store; a second run on the same corpus opens the existing one. Builders take an exclusive lock
per store, so processes started together (DDP ranks, two jobs) build it once; the others wait,
then open the finished file.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from nslightning.atomic import atomic_write
from nslightning.data.corpus import CorpusWarning, cache_dir

try:
    import fcntl
except ImportError:  # Windows: no lock, so runs must not build one corpus's store at once
    fcntl = None  # type: ignore[assignment]
from nslightning.data.token_store import FORMAT_VERSION, DamagedStoreError, TokenStore

log = logging.getLogger(__name__)

_NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def stores_dir() -> Path:
    """Where token stores live: ``<cache>/token-stores`` (see ``NSLIGHTNING_CACHE``)."""
    return cache_dir() / "token-stores"


def files_fingerprint(paths: list[Path]) -> list[list[Any]]:
    """``[path, inode, size, mtime_ns]`` of each file: what tells one version of a corpus from
    another without reading it (a file replaced by another of the same size and time, as
    ``cp -p`` makes, has a new inode)."""
    fingerprint = []
    for path in paths:
        stat = path.stat()
        fingerprint.append([str(path.resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns])
    return fingerprint


def store_path(kind: str, key: dict[str, Any]) -> Path:
    """The store file for ``key`` (any JSON-serialisable description of the content)."""
    text = json.dumps({"format": FORMAT_VERSION, "kind": kind, **key}, sort_keys=True)
    return stores_dir() / f"{kind}-{hashlib.sha256(text.encode()).hexdigest()[:32]}.tokens"


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    if fcntl is None:
        yield
        return
    with open(path.with_suffix(".lock"), "a+b") as lock:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for the lock of %s: another process is building it", path)
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def _notes(path: Path) -> Path:
    return path.with_name(path.name + ".warnings")


def _try_open(path: Path, damaged: list[str]) -> TokenStore | None:
    """The store, with the warnings of its build repeated; ``None`` if missing or damaged."""
    try:
        store = TokenStore.open(path)
    except FileNotFoundError:
        return None
    except DamagedStoreError as error:
        damaged.append(str(error))
        return None
    with contextlib.suppress(OSError):
        for note in _notes(path).read_text(encoding="utf-8").split("\n\n"):
            warnings.warn(f"{note} (when its token store was built)", CorpusWarning,
                          stacklevel=4)
    return store


def _build(path: Path, build: Callable[[Path], None]) -> None:
    """Runs ``build``. Its corpus warnings (:class:`~nslightning.data.corpus.CorpusWarning`:
    invalid UTF-8, pruned counts) are shown, also when the build fails, and kept beside a
    completed store so that runs which only open it show them too; other warnings pass
    through as they were."""
    _notes(path).unlink(missing_ok=True)
    completed = False
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", CorpusWarning)
            build(path)
        completed = True
    finally:
        notes = list(dict.fromkeys(
            str(w.message) for w in caught if issubclass(w.category, CorpusWarning)
        ))
        for other in caught:
            if not issubclass(other.category, CorpusWarning):
                warnings.warn_explicit(other.message, other.category, other.filename,
                                       other.lineno)
        if completed and notes:
            with contextlib.suppress(OSError), atomic_write(_notes(path), "w",
                                                             encoding="utf-8") as handle:
                handle.write("\n\n".join(notes))
        for note in notes:
            warnings.warn(note, CorpusWarning, stacklevel=4)


def _build_unchanged(path: Path, build: Callable[[Path], None], sources: list[Path]) -> None:
    """Builds, and refuses the store if a corpus file changed meanwhile (its passes would
    disagree, and the store would be named after the old version)."""
    before = files_fingerprint(sources)
    try:
        _build(path, build)
    except Exception as error:
        if files_fingerprint(sources) != before:
            raise ValueError(_CHANGED) from error
        raise
    if files_fingerprint(sources) != before:
        path.unlink(missing_ok=True)
        raise ValueError(_CHANGED)


_CHANGED = ("a corpus file changed while its token store was being built; run again once the "
            "corpus is complete.")


def open_or_build(
    path: Path, build: Callable[[Path], None], sources: list[Path] | None = None
) -> TokenStore:
    """Opens the store at ``path``, building it first with ``build(path)`` if it is missing or
    damaged (with a warning that says so); a change to a file of ``sources`` during the build
    is an error.

    ``build`` must write ``path`` atomically (:class:`~nslightning.data.token_store.
    TokenStoreWriter` does).

    Raises:
        OSError: the cache folder is not writable or its disk is full; the message names the
            folder and ``NSLIGHTNING_CACHE``.
    """
    damaged: list[str] = []
    if store := _try_open(path, damaged):
        return store
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with _exclusive(path):
            if store := _try_open(path, damaged):  # another process built it meanwhile
                return store
            if damaged:
                warnings.warn(
                    f"the token store {path} is damaged ({damaged[-1]}); rebuilding it.",
                    stacklevel=3,
                )
                path.unlink(missing_ok=True)
            if fcntl is not None:  # holding the lock: temporary files are killed builders'
                for stale in path.parent.glob(f".{path.name}.*.tmp"):
                    stale.unlink(missing_ok=True)
            log.info("building the token store %s", path)
            _build_unchanged(path, build, sources or [])
    except OSError as error:
        if error.errno in _NO_SPACE:
            raise OSError(
                error.errno,
                f"no space left to write the token store in {path.parent} ({error.strerror}); "
                "free space there, or point NSLIGHTNING_CACHE at a folder on a larger disk.",
            ) from error
        if error.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
            raise OSError(
                error.errno,
                f"cannot write the token store in {path.parent} ({error.strerror}); point "
                "NSLIGHTNING_CACHE at a writable folder.",
            ) from error
        raise
    return TokenStore.open(path)
