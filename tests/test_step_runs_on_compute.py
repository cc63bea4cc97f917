"""A step's command runs on whatever compute the pipeline has on AWS: the shell and
spark steps ask ``ctx.run_command`` (the compute's ``AwsCompute.run_command``), and no
step or core module builds an EMR step itself."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from dpc_core.types import AwsStepContext


def _ctx(tmp_path: Path, step: Any, runner: Any) -> AwsStepContext:
    return AwsStepContext(scope=None, pipeline=SimpleNamespace(name="p"), step=step,
                          compute=None, artifacts_bucket=None, cluster_id_path="$.cluster",
                          project_dir=tmp_path, runner=runner)


def test_a_shell_step_returns_what_the_computes_runner_builds(tmp_path: Path) -> None:
    from dpc_step_shell.aws import shell_states
    from dpc_step_shell.plugin import ShellStep

    step = ShellStep.model_validate({"name": "s", "type": "shell", "command": "echo hi"})
    ran = shell_states(_ctx(tmp_path, step, lambda ctx, argv: ("ran", ctx.step.name, argv)))
    assert ran[:2] == ("ran", "s")
    assert ran[2][-3:-1] == ["bash", "-c"] and ran[2][-1].endswith("\necho hi")


def test_a_compute_that_runs_no_commands_is_a_clear_error(tmp_path: Path) -> None:
    step = SimpleNamespace(name="s")
    with pytest.raises(ValueError, match="step 's' runs a command on the pipeline's compute"):
        _ctx(tmp_path, step, None).run_command(["true"])


def test_core_has_no_emr_step_builder() -> None:
    import importlib.util

    import dpc_core.cdk_values

    # aws_assets held only emr_add_step (now dpc-compute-emr's) and the upload helper
    # (now cdk_values.upload_project_file, behind AwsStepContext.upload).
    assert importlib.util.find_spec("dpc_core.aws_assets") is None
    assert not hasattr(dpc_core.cdk_values, "step_timeout")
