"""The Lambda bundle's third-party dependencies are the versions of ``uv.lock``: pinned
(``==``), closed under their own dependencies, installed with ``--no-deps``; so a bundle
built today and one built next month from the same release hold the same code."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

LOCK = Path(__file__).resolve().parents[1] / "uv.lock"


def _locked() -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in tomllib.loads(LOCK.read_text())["package"]}


def _closure(roots: tuple[str, ...], locked: dict[str, dict[str, Any]]) -> dict[str, str]:
    """name → locked version of ``roots`` and everything they need on Linux."""
    found: dict[str, str] = {}
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in found:
            continue
        pkg = locked[name]
        found[name] = pkg["version"]
        for dep in pkg.get("dependencies", []):
            marker = dep.get("marker", "")
            if "win32" in marker or "darwin" in marker:
                continue  # Lambda runs Linux
            todo.append(dep["name"])
    return found


def test_the_bundled_dependencies_are_the_locked_versions_and_nothing_is_missing() -> None:
    from dpc_central.common.lambda_asset import RUNTIME_REQUIREMENTS, RUNTIME_ROOTS

    pins = dict(r.split("==", 1) for r in RUNTIME_REQUIREMENTS)
    assert all("==" in r for r in RUNTIME_REQUIREMENTS)
    assert pins == _closure(RUNTIME_ROOTS, _locked())


def test_the_bundle_installs_exactly_the_pins(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """``--no-deps``: the installer may not resolve anything beyond the pinned set."""
    import dpc_central.common.lambda_asset as asset

    calls: list[tuple[Any, ...]] = []

    def record(target: Path, requirements: Any, extra_args: Any = ()) -> None:
        calls.append((tuple(requirements), tuple(extra_args)))
        target.mkdir(parents=True)

    monkeypatch.setattr(asset, "pip_install", record)
    asset.build_lambda_code(["dpc_core"], cache_dir=tmp_path, deps="pip")
    assert calls == [(asset.RUNTIME_REQUIREMENTS, ("--no-deps",))]
