"""Step Functions states of a ``shell`` step: an EMR step on the compute's cluster.

A command that starts with a project script (``./export.sh args``) uploads the script
to the artifacts bucket and runs it with EMR's script-runner; any other command runs
with ``bash -c`` through command-runner. Imported only while a CDK app is built.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from dpc_core.cdk_values import discard, step_timeout, string_at
from dpc_core.types import AwsStepContext


def _project_script(command: str, project_dir: Path) -> tuple[str, list[str]] | None:
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    if not words or not words[0].startswith(("./", "scripts/")) or \
            any(c in command for c in "|;&><`$"):
        return None
    return words[0], words[1:]


def shell_states(ctx: AwsStepContext) -> Any:
    """``addStep.sync`` running the command on the cluster."""
    from aws_cdk import Stack
    from aws_cdk import aws_stepfunctions as sfn
    from aws_cdk import aws_stepfunctions_tasks as tasks

    step = ctx.step
    if not ctx.cluster_id_path:
        raise ValueError("shell steps run on the pipeline's cluster on AWS; add "
                         "`compute: {type: emr}` to the pipeline")
    env = [f"{k}={v}" for k, v in sorted(step.env.items())]
    env.append(f"DPC_PIPELINE={ctx.pipeline.name}")
    script = _project_script(step.command, Path(ctx.project_dir))
    if script is not None:
        uri = ctx.upload(script[0], "script")
        region = Stack.of(ctx.scope).region
        jar = f"s3://{region}.elasticmapreduce/libs/script-runner/script-runner.jar"
        args = [uri, *script[1]]
    else:
        jar = "command-runner.jar"
        args = ["env", *env, "bash", "-c", step.command]
    return tasks.EmrAddStep(
        ctx.scope, step.name, cluster_id=string_at(ctx.cluster_id_path),
        name=step.name, jar=jar, args=args, action_on_failure=tasks.ActionOnFailure.CONTINUE,
        integration_pattern=sfn.IntegrationPattern.RUN_JOB, result_path=discard(),
        task_timeout=step_timeout(ctx))
