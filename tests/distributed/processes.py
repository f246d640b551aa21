"""Running the command line as users do, for the DDP tests: ``python -m nslightning ...`` in a
folder, on one process or on two (gloo), and reading what the run logged."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"
TWO_PROCESSES = [
    "-c", str(CONFIGS / "trainer/ddp.yaml"), "--trainer.accelerator", "cpu",
    "--trainer.devices", "2", "--trainer.enable_progress_bar", "false",
]
ONE_PROCESS = ["--trainer.accelerator", "cpu", "--trainer.devices", "1",
               "--trainer.enable_progress_bar", "false"]
RECORD_STEPS = "tests.distributed.step_recorder.RecordSteps"


def environment() -> dict[str, str]:
    """The test's environment, with this checkout importable (``tests.`` callbacks and
    samplers named in YAML) and W&B offline."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1", "PYTHONPATH": path}


def nslightning(folder: Path, *args: str, timeout: float = 300) -> str:
    """Runs ``python -m nslightning ARGS`` in ``folder``; returns its output, fails on errors
    and after ``timeout`` seconds (a DDP collective that one rank never joins hangs), then
    killing the ranks Lightning started too."""
    process = subprocess.Popen(
        [sys.executable, "-m", "nslightning", *args], cwd=folder, env=environment(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        raise AssertionError(
            f"nslightning {' '.join(args[:3])} ... ran past {timeout} s (a rank waiting in a "
            f"collective?):\n{stderr[-4000:]}"
        ) from None
    assert process.returncode == 0, stdout[-3000:] + stderr[-6000:]
    return stdout + stderr


def logged(folder: Path) -> list[dict[str, str]]:
    """The rows of the newest run's ``metrics.csv`` under ``folder``."""
    metrics = max(folder.glob("version_*/metrics.csv"),
                  key=lambda path: int(path.parent.name.removeprefix("version_")))
    with metrics.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def last(rows: list[dict[str, str]], key: str) -> float:
    """The last logged value of ``key``."""
    values = [float(row[key]) for row in rows if row.get(key)]
    assert values, f"{key} was not logged"
    return values[-1]
