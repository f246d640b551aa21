"""The test tree's layout rule: no module under tests/ imports a test module (``test_*``) or a
``conftest``. Shared helpers live in plain modules (``tests/corpora.py``, ``tests/cli_args.py``,
``tests/samplers/checkpoints.py``, ...); conftest files hold fixtures and are loaded by pytest."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent


def module_of(path: Path, root: Path) -> str:
    """The dotted name of ``path`` as a module under ``root``'s parent (``tests.data.test_x``)."""
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_forbidden(module: str) -> bool:
    last = module.rsplit(".", 1)[-1]
    return last.startswith("test_") or last == "conftest"


def forbidden_imports(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, imported module) for each import of a ``test_*`` module or a ``conftest`` in
    ``source``, the text of module ``module``; relative imports are resolved against it."""
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if is_forbidden(alias.name)]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            if is_forbidden(target):
                found.append((node.lineno, target))
            else:  # `from tests.tasks import test_lm_task` imports the test module itself
                found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names
                          if is_forbidden(alias.name)]
    return found


def test_no_module_under_tests_imports_a_test_module_or_a_conftest() -> None:
    problems = []
    for path in sorted(TESTS.rglob("*.py")):
        module = module_of(path, TESTS)
        for line, imported in forbidden_imports(
            path.read_text(encoding="utf-8"), module, path.name == "__init__.py"
        ):
            problems.append(f"{path.relative_to(TESTS.parent)}:{line} imports {imported}")
    assert not problems, (
        "test modules and conftest files are not helper libraries; move what is shared to a plain "
        "module (e.g. tests/corpora.py) and import it from there:\n" + "\n".join(problems)
    )


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from tests.test_cli import tiny_args", [(1, "tests.test_cli")]),
        ("import tests.tasks.test_lm_task", [(1, "tests.tasks.test_lm_task")]),
        ("from tests.conftest import TOPICS", [(1, "tests.conftest")]),
        ("from tests.tasks import test_lm_task, x", [(1, "tests.tasks.test_lm_task")]),
        ("from .test_lm_task import data_for", [(1, "tests.tasks.test_lm_task")]),
        ("from ..conftest import make_topic_corpus", [(1, "tests.conftest")]),
        ("from . import test_contrastive_task", [(1, "tests.tasks.test_contrastive_task")]),
        ("def f():\n    from tests.test_cli import tiny_args", [(2, "tests.test_cli")]),
        ("from tests.corpora import pattern_text\nfrom tests.samplers.checkpoints import x", []),
        ("import pytest\nfrom nslightning.data import testing", []),
    ],
)
def test_the_rule_finds_imports_of_test_modules_and_conftest(
    source: str, expected: list[tuple[int, str]]
) -> None:
    assert forbidden_imports(source, "tests.tasks.test_here") == expected


def test_module_names_follow_the_folders(tmp_path: Path) -> None:
    root = tmp_path / "tests"
    assert module_of(root / "data" / "test_x.py", root) == "tests.data.test_x"
    assert module_of(root / "data" / "__init__.py", root) == "tests.data"
    assert forbidden_imports("from .test_x import y", "tests.data", is_package=True) == [
        (1, "tests.data.test_x")
    ]
