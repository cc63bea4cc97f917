"""A bad plugin does not lock users out: the real `dpc` with throwaway installed plugins.

Each plugin here is a real distribution: a package and a ``*.dist-info`` directory with
``METADATA`` and ``entry_points.txt`` in a directory on ``PYTHONPATH``, found by
``importlib.metadata`` exactly as a pip-installed one is. Beside the first-party
plugins, ``acme-shell 1.2`` also claims the step type ``shell`` and
``dpc-step-future 9.0`` was built for plugin API 2.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

DPC = str(Path(sys.executable).parent / "dpc")

STEP_PLUGIN = """
    from dpc_core import hookimpl
    from dpc_core.types import StepConfig, StepType

    DPC_PLUGIN_API = {api}

    class Config(StepConfig):
        command: str

    @hookimpl
    def dpc_step_types():
        yield StepType(name={name!r}, config=Config)
"""


def install_dist(site: Path, dist: str, version: str, ep_name: str, module: str,
                 source: str) -> None:
    """Write a minimal installed distribution whose ``dpc`` entry point is ``module``."""
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[dpc]\n{ep_name} = {module}\n")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the two bad plugins' installed distributions."""
    root = tmp_path_factory.mktemp("site")
    install_dist(root, "acme-shell", "1.2", "acme_shell", "acme_shell_plugin",
                 STEP_PLUGIN.format(api=1, name="shell"))
    install_dist(root, "dpc-step-future", "9.0", "step_future", "dpc_step_future_plugin",
                 STEP_PLUGIN.format(api=2, name="future"))
    return root


def dpc(site: Path, *args: str, cwd: Path | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real `dpc` with the throwaway distributions installed."""
    base = {k: v for k, v in os.environ.items() if k != "DPC_PLUGINS"}
    return subprocess.run([DPC, *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={**base, "PYTHONPATH": str(site), **(env or {})})


def project(tmp_path: Path, step_type: str) -> Path:
    """A project with one step of ``step_type``."""
    step = {"shell": "command: 'true'", "spark": "script: job.py",
            "future": "command: 'true'"}[step_type]
    (tmp_path / "pipeline.yaml").write_text(
        f"name: p\nsteps:\n  - name: s\n    type: {step_type}\n    {step}\n")
    return tmp_path


SHELL_CONFLICT = (
    "step type 'shell' is claimed by acme-shell 1.2 and dpc-step-shell 0.1.0: uninstall one "
    "(pip uninstall acme-shell / pip uninstall dpc-step-shell) or set DPC_PLUGINS="
)


def test_plugins_list_runs_and_shows_the_conflict_with_its_fix(site: Path) -> None:
    proc = dpc(site, "plugins", "list")
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines()]
    assert ["shell", "step", "acme-shell", "1.2", "conflict"] in rows
    assert ["shell", "step", "dpc-step-shell", "0.1.0", "conflict"] in rows
    assert ["spark", "step", "dpc-step-spark", "0.1.0", "ok"] in rows
    assert SHELL_CONFLICT in proc.stdout
    assert "(that keeps acme-shell)" in proc.stdout  # the first claimant: dpc prefers none


def test_plugins_list_shows_a_plugin_built_for_another_api_as_skipped(site: Path) -> None:
    proc = dpc(site, "plugins", "list")
    assert proc.returncode == 0, proc.stderr
    assert ["future", "step", "dpc-step-future", "9.0", "skipped"] in [
        line.split() for line in proc.stdout.splitlines()]
    assert ("plugin 'step_future' from dpc-step-future 9.0 was skipped: was built for plugin "
            "API 2, this dpc-core 0.1.0 speaks 1") in proc.stdout


def test_plugins_list_json_carries_the_problems(site: Path) -> None:
    proc = dpc(site, "plugins", "list", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert [(c["kind"], c["name"]) for c in data["conflicts"]] == [("step", "shell")]
    assert [f["distribution"] for f in data["failures"]] == ["dpc-step-future"]
    assert len(data["problems"]) == 2
    assert {"name": "spark", "kind": "step", "plugin": "step_spark",
            "distribution": "dpc-step-spark", "version": "0.1.0",
            "status": "ok"} in data["plugins"]


def test_a_pipeline_not_using_the_affected_types_still_validates(
    site: Path, tmp_path: Path
) -> None:
    proc = dpc(site, "validate", str(project(tmp_path, "spark")))
    assert proc.returncode == 0, proc.stderr
    assert "1 pipeline(s) valid" in proc.stdout


def test_a_pipeline_using_the_conflicting_type_fails_with_the_fix(
    site: Path, tmp_path: Path
) -> None:
    proc = dpc(site, "validate", "pipeline.yaml", cwd=project(tmp_path, "shell"))
    assert proc.returncode == 2
    assert proc.stderr.startswith("pipeline.yaml:4:11: steps[0].type: " + SHELL_CONFLICT)
    assert "Traceback" not in proc.stderr


def test_a_pipeline_using_a_type_of_the_skipped_plugin_is_told_why(
    site: Path, tmp_path: Path
) -> None:
    proc = dpc(site, "validate", "pipeline.yaml", cwd=project(tmp_path, "future"))
    assert proc.returncode == 2
    assert proc.stderr.startswith(
        "pipeline.yaml:4:11: steps[0].type: step type 'future' is provided by "
        "dpc-step-future 9.0, which was skipped: was built for plugin API 2")


def test_the_suggested_allow_list_makes_the_conflicting_type_usable(
    site: Path, tmp_path: Path
) -> None:
    listed = dpc(site, "plugins", "list").stdout
    allow = listed.split("DPC_PLUGINS=")[1].split()[0]
    # dpc prefers no distribution: the allow-list keeps the first claimant (acme-shell).
    assert "step_shell" not in allow.split(",") and "acme_shell" in allow.split(",")
    proc = dpc(site, "plugins", "list", env={"DPC_PLUGINS": allow})
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines()]
    assert ["shell", "step", "acme-shell", "1.2"] in rows
    assert "conflict" not in proc.stdout
