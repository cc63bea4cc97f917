"""Step Functions states of a ``shell`` step: an EMR step on the compute's cluster.

Every command runs with ``bash -c`` through command-runner, in the step's environment and
with :data:`KEEP_BUSY` before it. A command that starts with a project script
(``./export.sh args``) uploads the script to the artifacts bucket and runs it from there
(:data:`RUN_SCRIPT`). Imported only while a CDK app is built.
"""

from __future__ import annotations

from typing import Any

from dpc_core.types import AwsStepContext
from dpc_step_shell.script import project_script

#: Runs before the command, in the background: while the command's shell lives, touch the
#: file EMR (6.4.0+) reads on the primary node to see activity that is not a YARN
#: application (Management Guide, "Using an auto-termination policy"), so auto-termination
#: never counts a long shell step as idle. ``$$`` is the step's shell (also after an
#: ``exec``); the loop holds none of its output, so the step ends with the command.
KEEP_BUSY = ("while kill -0 $$ 2>/dev/null; do touch /emr/metricscollector/isbusy "
             "2>/dev/null; sleep 30; done </dev/null >/dev/null 2>&1 &")

#: A project script: copied from the artifacts bucket with the cluster's AWS CLI (the
#: instance role reads the bucket) and run with the step's arguments and environment.
RUN_SCRIPT = ('script=$(mktemp) && aws s3 cp --quiet "$0" "$script" && chmod +x "$script" '
              '&& "$script" "$@"')


def shell_states(ctx: AwsStepContext) -> Any:
    """The command run on the pipeline's compute (``ctx.run_command``: dpc-compute-emr's
    is an ``addStep.sync`` ASL state on the run's cluster)."""
    step = ctx.step
    if not ctx.cluster_id_path:
        raise ValueError("shell steps run on the pipeline's cluster on AWS; add "
                         "`compute: {type: emr}` to the pipeline")
    env = [f"{k}={v}" for k, v in sorted(step.env.items())]
    env.append(f"DPC_PIPELINE={ctx.pipeline.name}")
    script = project_script(step.command)
    if script is not None:
        # The script and its arguments follow the command, as $0 and $@.
        run, extra = RUN_SCRIPT, [ctx.upload(script[0], "script"), *script[1]]
    else:
        run, extra = step.command, []
    return ctx.run_command(["env", *env, "bash", "-c", f"{KEEP_BUSY}\n{run}", *extra])
