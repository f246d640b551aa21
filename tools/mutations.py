"""Mutation audit: plants one-line bugs, one at a time, in a copy of the project and runs the
tests that should catch each. A mutation that no test catches is a gap in the suite.

    python tools/mutations.py                 # every mutation (about 15 minutes on 2 cores)
    python tools/mutations.py --list          # names, files and tests
    python tools/mutations.py skipgram-world-scaling contrastive-set-rank   # some of them

The copy is made once (tracked and untracked, not ignored, files of this checkout); each
mutation edits one file there, runs its tests with the copy first on ``sys.path`` (and on
``PYTHONPATH`` for the processes the tests start), and puts the file back. Each mutation's
``old`` text must occur exactly once in its file, so that a change of the code makes the audit
fail loudly instead of silently testing nothing, and the focused tests must first pass on the
unchanged copy. A mutation whose tests run past ``--timeout`` counts as caught (a hang, such
as a collective one rank never joins) and is listed as such. The last line printed is a JSON
summary; the exit status is 1 when a mutation survives. It is not part of ``.ci/run``: it runs
the focused tests once per mutation (the mutations are listed in ``tools/mutation_list.py``).

Why not mutmut: it generates thousands of mutants of every operator and reruns the suite for
each, days of the 2-core budget; these are the realistic bugs of the project's own history.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mutation_list import MUTATIONS, Mutation

ROOT = Path(__file__).resolve().parents[1]


def project_files(root: Path) -> list[str]:
    """Tracked and untracked files of the checkout that git does not ignore."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=root,
        check=True, capture_output=True,
    ).stdout.decode().split("\0")
    return [name for name in listed if name and (root / name).is_file()]


def copy_project(root: Path, target: Path) -> None:
    for name in project_files(root):
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, destination)


def check(mutation: Mutation, copy: Path) -> str:
    """The mutation's file, with the mutation applied; raises if ``old`` is not there once."""
    text = (copy / mutation.path).read_text(encoding="utf-8")
    found = text.count(mutation.old)
    if found != 1:
        raise SystemExit(
            f"{mutation.name}: expected the text once in {mutation.path}, found it {found} "
            f"times; update tools/mutation_list.py to the code:\n{mutation.old}"
        )
    return text.replace(mutation.old, mutation.new)


def run_pytest(arguments: list[str], copy: Path, timeout: float) -> tuple[int | None, str]:
    """Runs pytest in the copy, with the copy first on ``sys.path`` and ``PYTHONPATH``;
    ``(exit status or None after a timeout, output)``. On a timeout the whole process group
    goes (the DDP ranks a test started, too)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(copy), os.environ.get("PYTHONPATH")])),
        "NSLIGHTNING_CACHE": str(copy / ".cache")}
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *arguments],
        cwd=copy, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        return None, output
    return process.returncode, output


def run_tests(mutation: Mutation, copy: Path, timeout: float) -> tuple[str, float, str]:
    """Runs the mutation's tests in the copy: ``caught``, ``survived``, ``timed out`` or an
    error (pytest could not run them)."""
    started = time.perf_counter()
    status, output = run_pytest(list(mutation.tests), copy, timeout)
    seconds = time.perf_counter() - started
    lines = output.strip().splitlines()
    summary = lines[-1] if lines else ""
    if status is None:
        return "timed out", seconds, summary
    if status == 0:
        return "survived", seconds, summary
    # the first assertion line says how the tests noticed
    first_error = next((line.strip() for line in lines if line.startswith("E ")), summary)
    if status == 1:  # tests failed
        return "caught", seconds, first_error[:160]
    return f"error (pytest exit {status})", seconds, summary


def baseline(mutations: list[Mutation], copy: Path, timeout: float) -> None:
    """Runs every chosen mutation's tests once on the unchanged copy: they must pass there,
    or a failure would not tell a caught mutation from a broken test."""
    arguments = sorted({argument for m in mutations for argument in selection(m)})
    status, output = run_pytest(arguments, copy, timeout * 2)
    if status != 0:
        raise SystemExit(f"the tests fail without any mutation:\n{output[-3000:]}")
    print(f"  baseline  {output.strip().splitlines()[-1]}", flush=True)


def selection(mutation: Mutation) -> list[str]:
    """The test files or node ids a mutation names (``-k`` filters apply to the whole run, so
    the baseline runs whole files)."""
    tests = list(mutation.tests)
    if "-k" in tests:
        del tests[tests.index("-k"):tests.index("-k") + 2]
    return tests


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="mutations to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="seconds per mutation; past it the mutation counts as caught "
                             "(a hang)")
    args = parser.parse_args()
    chosen = [m for m in MUTATIONS if not args.names or m.name in args.names]
    unknown = set(args.names) - {m.name for m in MUTATIONS}
    if unknown:
        parser.error(f"unknown mutations: {', '.join(sorted(unknown))}")
    if args.list:
        for mutation in chosen:
            print(f"{mutation.name}\n    {mutation.path}: {mutation.why}\n"
                  f"    tests: {' '.join(mutation.tests)}")
        return 0
    results = []
    with tempfile.TemporaryDirectory(prefix="nslightning-mutations-",
                                     ignore_cleanup_errors=True) as folder:
        copy = Path(folder)
        copy_project(ROOT, copy)
        for mutation in chosen:  # every mutation must apply before any runs
            check(mutation, copy)
        baseline(chosen, copy, args.timeout)
        for mutation in chosen:
            original = (copy / mutation.path).read_text(encoding="utf-8")
            (copy / mutation.path).write_text(check(mutation, copy), encoding="utf-8")
            try:
                outcome, seconds, tail = run_tests(mutation, copy, args.timeout)
            finally:
                (copy / mutation.path).write_text(original, encoding="utf-8")
            results.append({"name": mutation.name, "outcome": outcome,
                            "seconds": round(seconds, 1)})
            print(f"{outcome:>10}  {mutation.name}  ({seconds:.0f} s)  {tail}", flush=True)
    survived = [r["name"] for r in results if r["outcome"] not in ("caught", "timed out")]
    timed_out = [r["name"] for r in results if r["outcome"] == "timed out"]
    caught = len(results) - len(survived)
    print(json.dumps({"mutations": len(results), "caught": caught, "by_timeout": timed_out,
                      "not_caught": survived}))
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
