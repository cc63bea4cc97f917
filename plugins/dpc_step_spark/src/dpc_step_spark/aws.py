"""Step Functions states of a ``spark`` step: an EMR step running spark-submit.

Imported only while a CDK app is built. The application is uploaded to the account's
artifacts bucket at deploy (an S3 deployment of the script's file).
"""

from __future__ import annotations

from typing import Any

from dpc_core.aws_assets import emr_add_step
from dpc_core.types import AwsStepContext


def spark_states(ctx: AwsStepContext) -> Any:
    """``addStep.sync`` of ``spark-submit --deploy-mode cluster`` on the compute's cluster
    (an ASL state: see :class:`dpc_core.types.AslState`)."""
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
    return emr_add_step(ctx, jar="command-runner.jar", args=args)
