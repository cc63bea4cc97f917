"""Every distribution of the workspace is typed and checked strictly: it ships ``py.typed``
(so a plugin importing ``dpc_central`` or ``dpc_core`` sees their types) and its package
is among the files ``mypy`` (run bare, as CI does) checks with ``strict = true``."""

from __future__ import annotations

import glob
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _packages() -> list[Path]:
    """The import package of each distribution: ``<member>/src/<package>``."""
    packages = []
    for member in [ROOT / "dpc_core", ROOT / "central", *sorted((ROOT / "plugins").iterdir())]:
        if (member / "pyproject.toml").is_file():
            packages += [p for p in (member / "src").iterdir() if (p / "__init__.py").is_file()]
    return packages


def test_the_workspace_has_a_core_central_and_plugin_packages() -> None:
    names = {p.name for p in _packages()}
    assert {"dpc_core", "dpc_central", "dpc_step_shell", "dpc_notify_opsgenie"} <= names


def test_every_package_ships_py_typed() -> None:
    assert [p.name for p in _packages() if not (p / "py.typed").is_file()] == []


def test_mypy_checks_every_package_strictly() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert config["strict"] is True
    checked = {Path(hit).resolve() for pattern in config["files"]
               for hit in glob.glob(str(ROOT / pattern))}
    assert [p.name for p in _packages() if p.resolve() not in checked] == []
