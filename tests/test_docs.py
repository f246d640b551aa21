"""The code in the documentation runs: every fenced ```python block of ``docs/*.md``.

The blocks of one file run in order, in one shared namespace, as the file's blocks pasted into
one script and run with ``python`` would (``__name__ == "__main__"``, so classes defined in a
block can be pickled, e.g. into a checkpoint), in a fresh temporary working directory that is
also on ``sys.path`` (a block may write a module and import it). A block whose nearest non-blank
line above its opening fence is ``<!-- skip-test -->`` is not run. A block that raises fails the
file's test with ``FILE:LINE`` (the block's first code line) and the traceback, whose lines are
those of the markdown file.

README.md is not run: its Python snippets are fragments (``counts``, ``positives``, the vectors
of a finished run are the reader's).
"""

from __future__ import annotations

import re
import sys
import traceback
import types
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = sorted((ROOT / "docs").glob("*.md"))
SKIP_MARKER = "<!-- skip-test -->"
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^\s`]*)")
LANGUAGES = {"python", "py"}


@dataclass(frozen=True)
class Block:
    """One fenced Python block: ``line`` is its first code line (1-based) in the file."""

    line: int
    code: str
    skip: bool


class BlockError(Exception):
    """A block raised; the message starts with ``FILE:LINE:`` and ends with the traceback."""


def python_blocks(text: str) -> list[Block]:
    """The fenced ```python (or ```py) blocks of markdown ``text``, in order."""
    lines = text.splitlines()
    blocks = []
    above = ""  # the nearest non-blank line above the current one
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            if lines[index].strip():
                above = lines[index].strip()
            index += 1
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        closing = re.compile(rf"^\s*{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        end = index + 1
        while end < len(lines) and not closing.match(lines[end]):
            end += 1
        if opening["info"].lower() in LANGUAGES:
            body = [line[min(indent, len(line) - len(line.lstrip())):]
                    for line in lines[index + 1:end]]
            blocks.append(Block(index + 2, "\n".join(body) + "\n", above == SKIP_MARKER))
        above = fence  # a marker above one block does not reach the next one
        index = end + 1
    return blocks


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def run_markdown(path: Path) -> int:
    """Runs the Python blocks of ``path`` in order in one namespace, as ``__main__``; returns
    how many ran. Raises :class:`BlockError` naming ``FILE:LINE`` when a block raises."""
    script = types.ModuleType("__main__")
    script.__dict__["__builtins__"] = __builtins__
    main, sys.modules["__main__"] = sys.modules["__main__"], script
    ran = 0
    try:
        for block in python_blocks(path.read_text(encoding="utf-8")):
            if block.skip:
                continue
            try:
                # padded so that tracebacks and syntax errors give the file's own line numbers
                code = compile("\n" * (block.line - 1) + block.code, str(path), "exec",
                               dont_inherit=True)  # not this file's `from __future__` imports
                exec(code, script.__dict__)
            except SystemExit as error:
                if error.code not in (0, None):
                    raise BlockError(failure(path, block, error)) from error
            except Exception as error:
                raise BlockError(failure(path, block, error)) from error
            ran += 1
    finally:
        sys.modules["__main__"] = main
    return ran


def failure(path: Path, block: Block, error: BaseException) -> str:
    trace = traceback.format_exception(type(error), error, error.__traceback__.tb_next)
    return (f"{shown(path)}:{block.line}: the python block starting on line {block.line} raised "
            f"{type(error).__name__}: {error}\n{''.join(trace)}")


@pytest.fixture
def scratch_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary working directory, also on ``sys.path``, for the blocks."""
    folder = tmp_path / "work"
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.syspath_prepend(str(folder))
    return folder


@pytest.mark.parametrize("path", DOC_FILES, ids=[path.name for path in DOC_FILES])
def test_the_python_blocks_of_the_docs_run(path: Path, scratch_folder: Path) -> None:
    try:
        run_markdown(path)
        return
    except BlockError as error:
        message = str(error)
    pytest.fail(message, pytrace=False)  # outside `except`: the message alone, not the chain


# ------------------------------------------------------------------ the harness itself
def write(folder: Path, text: str) -> Path:
    path = folder / "page.md"
    path.write_text(text, encoding="utf-8")
    return path


def test_blocks_share_one_namespace_and_run_in_the_working_directory(
    tmp_path: Path, scratch_folder: Path
) -> None:
    page = write(tmp_path, "# Page\n\n```python\nx = 2\n```\n\nText.\n\n```bash\nexit 1\n```\n\n"
                           "```py\nassert x == 2\nopen('out.txt', 'w').write('ok')\n```\n")
    assert run_markdown(page) == 2
    assert (scratch_folder / "out.txt").read_text() == "ok"


def test_a_block_that_raises_is_reported_with_its_file_and_first_line(
    tmp_path: Path, scratch_folder: Path
) -> None:
    page = write(tmp_path, "# Page\n\n```python\nx = 1\n```\n\n```python\ny = x + 1\n"
                           "z = y / 0\n```\n\n```python\nraise AssertionError('unreached')\n```\n")
    with pytest.raises(BlockError) as raised:
        run_markdown(page)
    message = str(raised.value)
    assert message.startswith(f"{page}:8: the python block starting on line 8 raised "
                              "ZeroDivisionError")
    assert f'File "{page}", line 9' in message and "z = y / 0" in message  # the failing line


def test_a_syntax_error_is_reported_with_its_file_and_line(
    tmp_path: Path, scratch_folder: Path
) -> None:
    page = write(tmp_path, "```python\nx = (1,\n```\n")
    with pytest.raises(BlockError, match=rf"^{re.escape(str(page))}:2: .* raised SyntaxError"):
        run_markdown(page)


def test_a_block_after_the_skip_marker_is_not_run(tmp_path: Path, scratch_folder: Path) -> None:
    page = write(tmp_path, "```python\nx = 1\n```\n\n<!-- skip-test -->\n\n```python\n"
                           "raise RuntimeError('skipped')\n```\n\n```python\nassert x == 1\n```\n")
    assert run_markdown(page) == 2
    assert [block.skip for block in python_blocks(page.read_text())] == [False, True, False]


def test_the_marker_applies_only_right_above_a_block(tmp_path: Path, scratch_folder: Path) -> None:
    page = write(tmp_path, "<!-- skip-test -->\n\nA paragraph.\n\n```python\nraise KeyError(1)\n"
                           "```\n")
    with pytest.raises(BlockError, match=r":6: .* raised KeyError"):
        run_markdown(page)


def test_blocks_run_as_a_script_whose_classes_pickle(tmp_path: Path, scratch_folder: Path) -> None:
    page = write(tmp_path, "```python\nimport pickle\n\nclass Point:\n    x: int = 3\n```\n\n"
                           "```python\nif __name__ == '__main__':\n"
                           "    assert pickle.loads(pickle.dumps(Point())).x == 3\n"
                           "    ran_as_main = True\n```\n\n```python\nassert ran_as_main\n"
                           "assert Point.__annotations__ == {'x': int}  # no inherited __future__\n"
                           "```\n")
    main = sys.modules["__main__"]
    assert run_markdown(page) == 3
    assert sys.modules["__main__"] is main


def test_indented_fences_and_other_languages(tmp_path: Path) -> None:
    text = ("1. Step:\n\n    ```python\n    a = 1\n      b = 2\n    ```\n\n"
            "~~~python\n```\nc = 3\n~~~\n\n```pycon\n>>> 1\n```\n")
    assert python_blocks(text) == [Block(4, "a = 1\n  b = 2\n", False),
                                   Block(9, "```\nc = 3\n", False)]
