"""Reads an offline W&B run back from its ``run-<id>.wandb`` file (tests only).

The file is a 7-byte header (``:W&B``, a 2-byte magic, a version byte) followed by LevelDB log
records in 32 KiB blocks: each record is a 4-byte checksum, a 2-byte length, a 1-byte type (1
full, 2 first, 3 middle, 4 last) and its bytes; each full payload is a serialized
``wandb_internal_pb2.Record``.
"""

from __future__ import annotations

import json
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf.message import DecodeError
from wandb.proto import wandb_internal_pb2

BLOCK = 32 * 1024
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def payloads(path: Path) -> list[bytes]:
    data = path.read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path} is not a W&B run file")
    out, pending, position = [], b"", HEADER
    while position + HEADER <= len(data):
        left_in_block = BLOCK - position % BLOCK
        if left_in_block < HEADER:  # the rest of a block too small for a header is padding
            position += left_in_block
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + HEADER])
        chunk = data[position + HEADER : position + HEADER + length]
        position += HEADER + length
        if kind == FULL:
            out.append(chunk)
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            out.append(pending + chunk)
        elif kind == 0 and length == 0:
            break
    return out


@dataclass
class OfflineRun:
    """What an offline run recorded: history rows, config, summary updates, metric definitions."""

    run_id: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def history_keys(self) -> set[str]:
        return {key for row in self.history for key in row}


def finished_records(path: Path, timeout: float = 30.0) -> list[Any]:
    """The records of a run file, once W&B's service has written its ``exit`` record.

    ``wandb.finish()`` can return before the service process has flushed the last records
    (the end-of-epoch metrics) to the file: reading it then sees a run without them.
    """
    deadline = time.monotonic() + timeout
    while True:
        records = []
        try:
            for payload in payloads(path):
                record = wandb_internal_pb2.Record()
                record.ParseFromString(payload)
                records.append(record)
        except DecodeError:  # a record being written
            records = []
        if any(r.WhichOneof("record_type") == "exit" for r in records):
            return records
        if time.monotonic() > deadline:
            return records
        time.sleep(0.1)


def read_offline_run(run_dir: Path) -> OfflineRun:
    """Parses ``run_dir/run-*.wandb`` (waiting for the run's last records)."""
    (path,) = run_dir.glob("run-*.wandb")
    run = OfflineRun()
    for record in finished_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.run_id = record.run.run_id
            items = record.run.config.update
        elif kind == "config":
            items = record.config.update
        else:
            items = []
        for item in items:
            run.config[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
        if kind == "history":
            run.history.append({
                item.key or "/".join(item.nested_key): json.loads(item.value_json)
                for item in record.history.item
            })
        elif kind == "summary":
            for item in record.summary.update:
                run.summary[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
        elif kind == "metric":
            run.metrics[record.metric.name or record.metric.glob_name] = record.metric
    return run
