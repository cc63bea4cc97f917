"""Step Functions states of a ``shell`` step: an EMR step on the compute's cluster.

A command that starts with a project script (``./export.sh args``) uploads the script
to the artifacts bucket and runs it with EMR's script-runner; any other command runs
with ``bash -c`` through command-runner. Imported only while a CDK app is built.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from dpc_core.aws_assets import emr_add_step
from dpc_core.cdk_values import stack_info
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
    """``addStep.sync`` running the command on the cluster (an ASL state: see
    :class:`dpc_core.types.AslState`)."""
    step = ctx.step
    if not ctx.cluster_id_path:
        raise ValueError("shell steps run on the pipeline's cluster on AWS; add "
                         "`compute: {type: emr}` to the pipeline")
    env = [f"{k}={v}" for k, v in sorted(step.env.items())]
    env.append(f"DPC_PIPELINE={ctx.pipeline.name}")
    script = _project_script(step.command, Path(ctx.project_dir))
    if script is not None:
        uri = ctx.upload(script[0], "script")
        region = stack_info(ctx.scope).region
        jar = f"s3://{region}.elasticmapreduce/libs/script-runner/script-runner.jar"
        args = [uri, *script[1]]
    else:
        jar = "command-runner.jar"
        args = ["env", *env, "bash", "-c", step.command]
    return emr_add_step(ctx, jar=jar, args=args)
