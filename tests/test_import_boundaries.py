"""Dependencies point from plugins to core (and to dpc_central.plugin_api), never back:
core and central name no plugin package, and core does not import central. Read from
the code's own import statements (AST), so a name in prose does not count."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: The top-level packages the repository's plugins ship (plugins/*/src/<package>).
PLUGIN_PACKAGES = sorted(p.name for p in ROOT.glob("plugins/*/src/*")
                         if (p / "__init__.py").is_file())


def imported(tree: Path) -> list[tuple[str, str]]:
    """``(file:line, module)`` of every import below ``tree``."""
    found = []
    for path in sorted(tree.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                # `from pkg import mod` imports pkg.mod (or a name of pkg: either way pkg).
                names = ([f"{node.module}.{a.name}" for a in node.names]
                         if "." not in node.module else [node.module])
            found += [(f"{path.relative_to(ROOT)}:{node.lineno}", n) for n in names]
    return found


def test_the_plugin_packages_are_found() -> None:
    assert {"dpc_compute_emr", "dpc_step_shell", "dpc_notify_slack"} <= set(PLUGIN_PACKAGES)


@pytest.mark.parametrize("tree", ["dpc_core/src", "central/src"])
def test_core_and_central_import_no_plugin(tree: str) -> None:
    bad = [(where, m) for where, m in imported(ROOT / tree)
           if m.split(".")[0] in PLUGIN_PACKAGES]
    assert not bad, bad


def test_core_does_not_import_central() -> None:
    bad = [(where, m) for where, m in imported(ROOT / "dpc_core" / "src")
           if m.split(".")[0] == "dpc_central"]
    assert not bad, bad


def test_plugins_use_only_centrals_plugin_api() -> None:
    bad = [(where, m) for where, m in imported(ROOT / "plugins")
           if m.split(".")[0] == "dpc_central" and m != "dpc_central.plugin_api"
           and "/tests/" not in where]
    assert not bad, bad


def _code_strings(tree: Path) -> list[tuple[str, str]]:
    """``(file:line, text)`` of every string constant below ``tree`` that is not a
    docstring (prose may name anything; code may not)."""
    found = []
    for path in sorted(tree.rglob("*.py")):
        module = ast.parse(path.read_text(), str(path))
        docstrings = {id(n.body[0].value) for n in ast.walk(module)
                      if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                        ast.AsyncFunctionDef))
                      and n.body and isinstance(n.body[0], ast.Expr)
                      and isinstance(n.body[0].value, ast.Constant)}
        found += [(f"{path.relative_to(ROOT)}:{n.lineno}", n.value) for n in ast.walk(module)
                  if isinstance(n, ast.Constant) and isinstance(n.value, str)
                  and id(n) not in docstrings]
    return found


def test_core_names_neither_central_nor_a_plugin_in_its_code() -> None:
    """Not even as a string to import later (a command table, a 'pip install' hint):
    what is installed says what there is, through entry points and hooks."""
    dists = sorted(p.parent.name.replace("_", "-") for p in ROOT.glob("plugins/*/pyproject.toml"))
    # ("dpc-central" is also the central stack's name, which core reads: not checked.)
    names = ["dpc_central", *PLUGIN_PACKAGES, *dists]
    bad = [(where, text) for where, text in _code_strings(ROOT / "dpc_core" / "src")
           if any(n in text for n in names)]
    assert not bad, bad
