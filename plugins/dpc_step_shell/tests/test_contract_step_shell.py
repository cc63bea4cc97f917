"""dpc-step-shell against the plugin contract of dpc-core."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from dpc_core.testing.contract import PluginContract
from dpc_core.types import RunContext
from dpc_step_shell.plugin import ShellStep, local_command


class TestShellContract(PluginContract):
    plugin_module = "dpc_step_shell.plugin"
    examples: ClassVar[dict[str, dict[str, Any]]] = {
        "shell": {"name": "export", "type": "shell", "command": "./export.sh",
                  "env": {"TARGET": "s3://bucket/out"}},
    }


def test_a_shell_step_runs_its_command_with_bash_in_the_project_directory(
    tmp_path: Path,
) -> None:
    step = ShellStep(name="s", type="shell", command="./run.sh", env={"A": "1"})
    ctx = RunContext(pipeline="p", account="123456789012", run_id="r", logical_date="2026-11-26",
                     project_dir=tmp_path, work_dir=tmp_path, data_dir=tmp_path)
    command = local_command(step, ctx)
    assert (list(command.argv), dict(command.env), command.cwd) == (
        ["bash", "-c", "./run.sh"], {"A": "1"}, tmp_path)
