"""`dpc create-plugin`: names that would collide are refused; the package pins dpc-core
to the releases that speak its plugin API and declares its test dependencies."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from dpc_core import PLUGIN_API_VERSION, __version__
from dpc_core.scaffold import core_requirement

DPC = str(Path(sys.executable).parent / "dpc")


def create_plugin(tmp_path: Path, kind: str, name: str) -> subprocess.CompletedProcess[str]:
    """Run the real `dpc create-plugin` into ``tmp_path``."""
    env = {k: v for k, v in os.environ.items() if k != "DPC_PLUGINS"}
    return subprocess.run([DPC, "create-plugin", "--kind", kind, "-n", name, "--dir",
                           str(tmp_path)], capture_output=True, text=True, timeout=60, env=env)


@pytest.mark.parametrize(("kind", "name", "message"), [
    ("step", "shell", "error: a distribution named dpc-step-shell is already installed "
                      "(version 0.1.0); choose another name, e.g. -n my-shell"),
    ("compute", "local", "error: compute type 'local' is already provided by dpc-core; two "
                         "plugins cannot share it, choose another name, e.g. -n my-local"),
    ("notifier", "slack", "error: notification channel 'SLACK' is already provided by "
                          "dpc-notify-slack; two plugins cannot share it, choose another "
                          "name, e.g. -n my-slack"),
])
def test_create_plugin_refuses_a_name_that_is_taken(
    tmp_path: Path, kind: str, name: str, message: str
) -> None:
    proc = create_plugin(tmp_path, kind, name)
    assert (proc.returncode, proc.stderr.strip()) == (2, message)
    assert list(tmp_path.iterdir()) == []


def test_create_plugin_refuses_a_step_type_another_distribution_registers(
    tmp_path: Path,
) -> None:
    # `emr` is only a compute type: as a step type it is free, as a compute it is not.
    assert create_plugin(tmp_path / "a", "step", "emr").returncode == 0
    proc = create_plugin(tmp_path / "b", "compute", "emr")
    assert proc.returncode == 2
    assert "a distribution named dpc-compute-emr is already installed" in proc.stderr


def test_the_scaffold_pins_dpc_core_to_the_releases_of_its_plugin_api(tmp_path: Path) -> None:
    assert create_plugin(tmp_path, "step", "greet").returncode == 0
    project = tomllib.loads((tmp_path / "dpc-step-greet" / "pyproject.toml").read_text())
    [req] = [Requirement(r) for r in project["project"]["dependencies"]]
    assert req.name == "dpc-core"
    major = int(__version__.split(".")[0])
    assert req.specifier.contains(__version__)
    assert not req.specifier.contains(f"{major + 1}.0.0")
    assert not req.specifier.contains("0.0.1")
    plugin = (tmp_path / "dpc-step-greet" / "src" / "dpc_step_greet" / "plugin.py").read_text()
    assert f"DPC_PLUGIN_API = {PLUGIN_API_VERSION}" in plugin


def test_the_scaffold_declares_its_test_dependencies(tmp_path: Path) -> None:
    assert create_plugin(tmp_path, "compute", "tiny").returncode == 0
    project = tomllib.loads((tmp_path / "dpc-compute-tiny" / "pyproject.toml").read_text())
    tests = [Requirement(r).name for r in project["project"]["optional-dependencies"]["test"]]
    assert "pytest" in tests


@pytest.mark.parametrize(("version", "expected"), [
    ("0.1.0", "dpc-core>=0.1,<1"), ("1.4.2", "dpc-core>=1.4,<2"), ("2.0.0rc1", "dpc-core>=2.0,<3"),
])
def test_core_requirement_spans_to_the_next_major(version: str, expected: str) -> None:
    assert core_requirement(version) == expected
