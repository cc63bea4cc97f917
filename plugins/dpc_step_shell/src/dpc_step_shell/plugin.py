"""``type: shell`` steps: a command run with bash, in the project directory.

Locally the command runs in a subprocess; on AWS it runs on the compute's
cluster through EMR's command-runner (see :mod:`dpc_step_shell.aws`).
"""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import Field

from dpc_core import hookimpl
from dpc_core.deployability import needs_compute
from dpc_core.types import LocalCommand, RunContext, StepConfig, StepType
from dpc_step_shell.script import project_script

DPC_PLUGIN_API = 1


class ShellStep(StepConfig):
    """A shell command; ``./script.sh`` paths are relative to the project directory."""

    command: str = Field(min_length=1, description="command line run with bash -c")
    env: dict[str, str] = Field(default_factory=dict, description="extra environment variables")


def local_command(step: ShellStep, ctx: RunContext) -> LocalCommand:
    """Run the command with bash from the project directory."""
    return LocalCommand(argv=["bash", "-c", step.command], env=dict(step.env), cwd=ctx.project_dir)


def _files(step: ShellStep) -> list[str]:
    """The script the AWS form uploads, if the command runs one."""
    script = project_script(step.command)
    return [script[0]] if script else []


@needs_compute("emr")  # an EMR step: the pipeline gets a cluster by default
def _aws_states(ctx):  # type: ignore[no-untyped-def]
    from dpc_step_shell.aws import shell_states

    return shell_states(ctx)


@hookimpl
def dpc_step_types() -> Iterator[StepType]:
    """The ``shell`` step type."""
    yield StepType(name="shell", config=ShellStep, local=local_command, aws_states=_aws_states,
                   description="a bash command", files=_files)
