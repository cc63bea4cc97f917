"""The test suite's own layout: test modules share helpers through tests/conftest.py and
the tests/helpers/ package, never by importing one another (an import of a test module
runs its module-level code and collects nothing, and ties two suites together)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imported_test_modules(path: Path) -> list[str]:
    """The ``test_*`` modules ``path`` imports, anywhere in it (``tests.test_x`` too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        found += [n for n in names if n.rpartition(".")[2].startswith("test_")]
    return found


def test_no_test_module_imports_another() -> None:
    offenders = {str(p.relative_to(ROOT)): imported_test_modules(p)
                 for p in sorted(ROOT.glob("**/tests/**/*.py")) if ".venv" not in p.parts}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_an_import_of_a_test_module_is_found(tmp_path: Path) -> None:
    module = tmp_path / "test_b.py"
    module.write_text("import json\nfrom test_a import Browser\n"
                      "def f():\n    from tests.test_c import X\n")
    assert imported_test_modules(module) == ["test_a", "tests.test_c"]
