"""Step Functions states of a ``spark`` step: an EMR step running spark-submit.

Imported only while a CDK app is built. The application is uploaded to the account's
artifacts bucket at deploy (an S3 deployment of the script's file).
"""

from __future__ import annotations

import functools
from typing import Any

from dpc_core.types import AwsStepContext


def step_timeout(ctx: AwsStepContext) -> Any:
    """The EMR step's task timeout: the compute's ``stepTimeoutMinutes`` (shorter than the
    run's), so a stuck step fails into the catch path, which terminates the cluster,
    instead of the run timing out, which skips it. None when the compute sets none."""
    minutes = getattr(ctx.compute, "step_timeout_minutes", None)
    return _timeout(minutes) if minutes else None


# The same in every stack, so made once per process (each jsii call is a round trip).
@functools.cache
def _timeout(minutes: int) -> Any:
    from aws_cdk import Duration
    from aws_cdk import aws_stepfunctions as sfn

    return sfn.Timeout.duration(Duration.minutes(minutes))


@functools.cache
def _string_at(path: str) -> str:
    from aws_cdk import aws_stepfunctions as sfn

    return sfn.JsonPath.string_at(path)


@functools.cache
def _discard() -> str:
    from aws_cdk import aws_stepfunctions as sfn

    return sfn.JsonPath.DISCARD


def spark_states(ctx: AwsStepContext) -> Any:
    """``addStep.sync`` of ``spark-submit --deploy-mode cluster`` on the compute's cluster."""
    from aws_cdk import aws_stepfunctions as sfn
    from aws_cdk import aws_stepfunctions_tasks as tasks

    step = ctx.step
    if not ctx.cluster_id_path:
        raise ValueError("spark steps run on a cluster on AWS; add `compute: {type: emr}` "
                         "to the pipeline")
    script = ctx.upload(step.script, "script")
    args = ["spark-submit", "--deploy-mode", "cluster",
            "--conf", f"spark.yarn.appMasterEnv.DPC_PIPELINE={ctx.pipeline.name}"]
    for k, v in step.conf.items():
        args += ["--conf", f"{k}={v}"]
    if step.main_class:
        args += ["--class", step.main_class]
    args += [script, *step.args]
    return tasks.EmrAddStep(
        ctx.scope, step.name, cluster_id=_string_at(ctx.cluster_id_path),
        name=step.name, jar="command-runner.jar", args=args,
        action_on_failure=tasks.ActionOnFailure.CONTINUE,
        integration_pattern=sfn.IntegrationPattern.RUN_JOB, result_path=_discard(),
        task_timeout=step_timeout(ctx))
