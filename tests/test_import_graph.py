"""dpc_core's modules import one another without a circle.

The graph is drawn from the source with :mod:`ast`: every ``import`` and ``from ...
import`` of a ``dpc_core`` module, at module level, inside functions (dpc_core imports
late to keep start-up fast, which is where circles hide) and under ``TYPE_CHECKING``.
An import of a package does not count as an import of its ``__init__``'s imports.
"""

from __future__ import annotations

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[1] / "dpc_core" / "src" / "dpc_core"


def module_name(root: Path, path: Path) -> str:
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path) -> dict[str, set[str]]:
    """``{module: modules of the package it imports}`` for every module under ``root``."""
    files = {module_name(root, p): p for p in sorted(root.rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                # ``from pkg import mod`` imports the module pkg.mod; ``from mod import x``,
                # the module mod.
                targets.update(f"{base}.{a.name}" if f"{base}.{a.name}" in files else base
                               for a in node.names)
        graph[name] = {t for t in targets if t in files and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


#: dpc_core's layers, lowest first (ARCHITECTURE.md explains them): a module imports only
#: modules of its own layer or of a lower one. Modules named by their path under dpc_core;
#: a package name covers its modules.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("dpc_core", "errors", "jsonlimits", "progress", "schedule", "deadlines", "store",
     "cdk_values", "retry", "types"),
    ("model", "events", "hookspecs", "plugins", "builtin", "loader", "schema", "notify",
     "address_secrets", "deployability", "stores"),
    ("engine", "health", "lineage", "simulate", "openlineage", "aws_session", "aws_runs",
     "aws_backfill", "grid", "scaffold", "testing"),
    ("local",),
    ("ui",),
    ("cli",),
)


def layer_of(module: str) -> int:
    """The layer of a ``dpc_core`` module (its longest listed prefix); KeyError if none."""
    rel = module.removeprefix("dpc_core.") if module != "dpc_core" else "dpc_core"
    for candidate in (rel, rel.split(".")[0]):
        for number, names in enumerate(LAYERS):
            if candidate in names:
                return number
    raise KeyError(f"{module} is in no layer of LAYERS: add it where it belongs")


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """``importer -> imported`` for each import of a module from a higher layer."""
    return sorted(f"{m} -> {t}" for m, targets in graph.items() for t in targets
                  if layer_of(t) > layer_of(m))


def test_every_module_imports_only_its_own_layer_or_lower_ones() -> None:
    assert upward_imports(import_graph(CORE)) == []


def test_an_import_from_a_higher_layer_is_found() -> None:
    graph = {"dpc_core.lineage": {"dpc_core.ui.page", "dpc_core.store"},
             "dpc_core.ui.page": {"dpc_core.lineage"}}
    assert upward_imports(graph) == ["dpc_core.lineage -> dpc_core.ui.page"]


def test_dpc_core_has_no_import_circle() -> None:
    graph = import_graph(CORE)
    assert len(graph) > 40  # the whole package was read
    assert cycles(graph) == []


def test_a_circle_through_a_function_level_import_is_found(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "ui").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "ui" / "__init__.py").write_text("")
    (pkg / "lineage.py").write_text("def html():\n    from pkg.ui.page import render\n")
    (pkg / "ui" / "page.py").write_text("from ..lineage import COLOURS\n")
    (pkg / "types.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import assets\n")
    (pkg / "assets.py").write_text("import pkg.types\nfrom pkg import lineage\n")
    graph = import_graph(pkg)
    assert graph["pkg.ui.page"] == {"pkg.lineage"}
    assert cycles(graph) == [["pkg.assets", "pkg.types"], ["pkg.lineage", "pkg.ui.page"]]
