"""Step Functions states of a ``spark`` step: an EMR step running spark-submit.

Imported only while a CDK app is built. The application is uploaded to the account's
artifacts bucket at deploy (an S3 deployment of the script's file).
"""

from __future__ import annotations

from typing import Any

from dpc_core.cdk_values import discard, step_timeout, string_at
from dpc_core.types import AwsStepContext


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
        ctx.scope, step.name, cluster_id=string_at(ctx.cluster_id_path),
        name=step.name, jar="command-runner.jar", args=args,
        action_on_failure=tasks.ActionOnFailure.CONTINUE,
        integration_pattern=sfn.IntegrationPattern.RUN_JOB, result_path=discard(),
        task_timeout=step_timeout(ctx))
