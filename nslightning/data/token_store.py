"""The token store: a corpus as one flat ``int32`` file of ids, read through ``numpy.memmap``.

Memory does not grow with the corpus: the ids stay on disk and training reads slices of them;
only the vocabulary is held in RAM. Layout of a store file::

    header   4096 bytes: magic, JSON length and CRC-32, then the JSON (sizes, sections,
             the payload's checksum, how the store was built)
    ids      (T,) int32, section after section, padded to 8 bytes
    starts   (S + 1,) int64: where each sentence starts in the ids, then T (absent when S = 0)
    vocab    the vocabulary, ``token<TAB>count`` lines in id order (UTF-8)

The header's size and checksums are checked on every open, and the CRC-32 of everything after
the header once per version of the file (a ``.verified`` file beside it records the inode,
size and modification time that passed; the writer records the file it wrote), so a
truncated or damaged file is refused (:class:`DamagedStoreError`). A store is written under a
temporary name and renamed when complete (:class:`TokenStoreWriter`): readers never see half
of one.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
from torch import Tensor

from nslightning.atomic import atomic_write, set_new_file_mode
from nslightning.data.vocabulary import Vocabulary

MAGIC = b"NSLTOKS\x01"
HEADER_BYTES = 4096
FORMAT_VERSION = 2
_COPY_BYTES = 1 << 24


class DamagedStoreError(ValueError):
    """A store file that is truncated, damaged or of another format."""


def _pad(size: int) -> int:
    return -size % 8


@dataclass
class TokenStore:
    """An opened store: ids and sentence starts as read-only memory maps.

    Attributes:
        path: the store file.
        tokens: ``(T,)`` int32 ids, a memory map.
        sentence_starts: ``(S + 1,)`` int64 position of each sentence's first id, then ``T``;
            ``(0,)`` when the store keeps no sentences.
        sections: ``name -> (start, stop)`` ranges of ``tokens`` (e.g. train/val/test).
        vocabulary: the vocabulary the ids refer to.
        info: what the store was built from (corpus files, settings, counts).
    """

    path: Path
    tokens: np.ndarray
    sentence_starts: np.ndarray
    sections: dict[str, tuple[int, int]]
    vocabulary: Vocabulary
    info: dict[str, Any]

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def num_sentences(self) -> int:
        return max(int(self.sentence_starts.shape[0]) - 1, 0)

    def section(self, name: str) -> np.ndarray:
        """``(T_name,)`` int32 ids of one section, a slice of the memory map."""
        start, stop = self.sections[name]
        return self.tokens[start:stop]

    def chunk(self, start: int, stop: int) -> tuple[Tensor, Tensor]:
        """Ids ``start:stop`` and the sentence of each, copied out of the map.

        Returns:
            ``tokens (n,)`` int32 and ``sentence_ids (n,)`` int64: the number of the
            (non-empty) corpus line each id comes from.
        """
        stop = min(stop, len(self))
        tokens = torch.from_numpy(np.array(self.tokens[start:stop]))
        starts = self.sentence_starts
        first = int(np.searchsorted(starts, start, side="right")) - 1
        last = int(np.searchsorted(starts, stop - 1, side="right"))
        local = np.asarray(starts[first:last])
        positions = np.arange(start, stop, dtype=np.int64)
        sentences = first + np.searchsorted(local, positions, side="right") - 1
        return tokens, torch.from_numpy(sentences.astype(np.int64))

    def __reduce__(self) -> tuple[Any, tuple[Path]]:
        """Pickles as the path: a process that unpickles a store maps the file again instead
        of receiving a copy of the ids (DataLoader workers, spawned processes)."""
        return (TokenStore.open, (self.path,))

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> TokenStore:
        """Opens a store file and checks its header, size and (once per version) checksum.

        Raises:
            FileNotFoundError: no such file.
            DamagedStoreError: the file is truncated, damaged or not a token store.
        """
        path = Path(path)
        with open(path, "rb") as handle:
            meta = _read_header(handle)
            stat = os.fstat(handle.fileno())
            actual = stat.st_size - HEADER_BYTES
            if actual != meta["payload_bytes"]:
                raise DamagedStoreError(
                    f"{actual} bytes after the header, {meta['payload_bytes']} expected"
                )
            if _read_marker(path) != _version(stat, meta["crc32"]):
                if _checksum(handle) != meta["crc32"]:
                    raise DamagedStoreError("checksum mismatch")
                _mark_verified(path, stat, meta["crc32"])
            handle.seek(HEADER_BYTES + meta["vocabulary_offset"])
            vocabulary_text = handle.read(meta["vocabulary_bytes"]).decode("utf-8")
            num_tokens, num_sentences = meta["num_tokens"], meta["num_sentences"]
            tokens = np.memmap(handle, dtype=np.int32, mode="r", offset=HEADER_BYTES,
                               shape=(num_tokens,))
            starts = np.zeros(0, dtype=np.int64)
            if num_sentences:
                starts = np.memmap(handle, dtype=np.int64, mode="r",
                                   offset=HEADER_BYTES + meta["starts_offset"],
                                   shape=(num_sentences + 1,))
        return cls(
            path=path,
            tokens=tokens,
            sentence_starts=starts,
            sections={name: (int(a), int(b)) for name, (a, b) in meta["sections"].items()},
            vocabulary=Vocabulary.from_text(vocabulary_text, str(path)),
            info=meta["info"],
        )


def _read_header(handle: IO[bytes]) -> dict[str, Any]:
    header = handle.read(HEADER_BYTES)
    if len(header) < HEADER_BYTES or not header.startswith(MAGIC):
        raise DamagedStoreError("no token-store header")
    start = len(MAGIC) + 8
    size = int.from_bytes(header[len(MAGIC) : len(MAGIC) + 4], "little")
    crc = int.from_bytes(header[len(MAGIC) + 4 : start], "little")
    text = header[start : start + size]
    if len(text) != size or zlib.crc32(text) != crc:
        raise DamagedStoreError("damaged header")
    meta: dict[str, Any] = json.loads(text)
    if meta.get("version") != FORMAT_VERSION:
        raise DamagedStoreError(f"format version {meta.get('version')}")
    return meta


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _version(stat: os.stat_result, crc: int) -> str:
    """What identifies one version of a store file whose checksum was found right."""
    return f"{stat.st_ino} {stat.st_size} {stat.st_mtime_ns} {crc}"


def _read_marker(path: Path) -> str | None:
    try:
        return _marker(path).read_text()
    except OSError:
        return None


def _mark_verified(path: Path, stat: os.stat_result, crc: int) -> None:
    with contextlib.suppress(OSError), atomic_write(_marker(path), "w") as out:
        out.write(_version(stat, crc))


def _checksum(handle: IO[bytes]) -> int:
    handle.seek(HEADER_BYTES)
    crc = 0
    buffer = bytearray(_COPY_BYTES)
    view = memoryview(buffer)
    while read := handle.readinto(buffer):  # type: ignore[attr-defined]
        crc = zlib.crc32(view[:read], crc)
    return crc


class TokenStoreWriter:
    """Writes a store in one pass over the corpus, under a temporary name.

    Use as a context manager: append ids (and sentence starts), then :meth:`commit`; leaving
    the block without committing (an error, an interrupt) removes the temporary files, and a
    killed process leaves only files named ``.<name>.*.tmp``, never ``path`` itself.

    Args:
        path: the store file to create.
        sections: section names; ids of the first are written in place, the others to side
            files that :meth:`commit` appends.
    """

    def __init__(self, path: str | os.PathLike[str], sections: Sequence[str] = ("all",)) -> None:
        self.path = Path(path)
        self.sections = list(sections)
        self.counts = [0] * len(self.sections)
        self.num_sentences = 0
        self._crc = 0
        self._temps: list[Path] = []  # temporary files, the store's own first
        self._files: list[IO[bytes]] = []  # their handles, in the same order
        self._handles: list[IO[bytes]] = []
        self._starts: IO[bytes] | None = None

    def _temp(self) -> IO[bytes]:
        fd, name = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp",
                                    dir=self.path.parent)
        handle = os.fdopen(fd, "wb")
        self._temps.append(Path(name))
        self._files.append(handle)
        return handle

    def __enter__(self) -> TokenStoreWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        main = self._temp()
        main.write(bytes(HEADER_BYTES))
        self._handles = [main] + [self._temp() for _ in self.sections[1:]]
        self._starts = self._temp()
        return self

    def __exit__(self, *exc_info: object) -> None:
        for handle in self._files:
            with contextlib.suppress(OSError):  # e.g. a full disk: the first error is raised
                handle.close()
        for temp in self._temps:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()

    def append(self, ids: np.ndarray, section: int = 0) -> None:
        """Appends ``(n,)`` ids to a section."""
        data = np.ascontiguousarray(ids, dtype=np.int32).tobytes()
        if section == 0:
            self._crc = zlib.crc32(data, self._crc)
        self._handles[section].write(data)
        self.counts[section] += len(data) // 4

    def start_sentences(self, positions: np.ndarray) -> None:
        """Records ``(k,)`` positions (in the first section) where new sentences start."""
        assert self._starts is not None
        self._starts.write(np.ascontiguousarray(positions, dtype=np.int64).tobytes())
        self.num_sentences += int(positions.shape[0])

    def _write(self, data: bytes) -> None:
        self._crc = zlib.crc32(data, self._crc)
        self._handles[0].write(data)

    def _copy(self, handle: IO[bytes]) -> None:
        handle.flush()
        with open(self._temps[self._files.index(handle)], "rb") as source:
            while data := source.read(_COPY_BYTES):
                self._write(data)

    def commit(self, vocabulary: Vocabulary, info: dict[str, Any]) -> None:
        """Completes the file (sections, sentence starts, vocabulary, header) and renames it to
        ``path``."""
        assert self._starts is not None
        for handle in self._handles[1:]:
            self._copy(handle)
        num_tokens = sum(self.counts)
        self._write(bytes(_pad(4 * num_tokens)))
        starts_offset = 4 * num_tokens + _pad(4 * num_tokens)
        if self.num_sentences:
            self._copy(self._starts)
            self._write(np.int64(self.counts[0]).tobytes())
        vocabulary_offset = starts_offset + (8 * (self.num_sentences + 1)
                                             if self.num_sentences else 0)
        vocabulary_bytes = vocabulary.to_text().encode("utf-8")
        self._write(vocabulary_bytes)
        bounds = np.cumsum([0, *self.counts]).tolist()
        meta = {
            "version": FORMAT_VERSION,
            "num_tokens": num_tokens,
            "num_sentences": self.num_sentences,
            "sections": {name: [bounds[i], bounds[i + 1]] for i, name in enumerate(self.sections)},
            "starts_offset": starts_offset,
            "vocabulary_offset": vocabulary_offset,
            "vocabulary_bytes": len(vocabulary_bytes),
            "payload_bytes": vocabulary_offset + len(vocabulary_bytes),
            "crc32": self._crc,
            "info": info,
        }
        encoded = json.dumps(meta).encode("utf-8")
        if len(MAGIC) + 8 + len(encoded) > HEADER_BYTES:
            raise ValueError("the token store's description does not fit its header.")
        main = self._handles[0]
        main.seek(0)
        main.write(MAGIC + len(encoded).to_bytes(4, "little")
                   + zlib.crc32(encoded).to_bytes(4, "little") + encoded)
        main.flush()
        set_new_file_mode(main.fileno(), self._temps[0])  # not mkstemp's 0o600
        os.fsync(main.fileno())
        written = os.fstat(main.fileno())  # a rename keeps the inode, size and mtime
        main.close()
        os.replace(self._temps[0], self.path)
        _mark_verified(self.path, written, self._crc)  # the CRC of what was just written
