"""Step Functions states of a ``spark`` step: an EMR step running spark-submit.

Imported only while a CDK app is built. The application is uploaded to the account's
artifacts bucket at deploy (an S3 deployment of the script's file).
"""

from __future__ import annotations

from typing import Any

from dpc_core.types import AwsStepContext


def spark_states(ctx: AwsStepContext) -> Any:
    """``spark-submit --deploy-mode cluster`` run on the pipeline's compute
    (``ctx.run_command``: dpc-compute-emr's is an ``addStep.sync`` ASL state)."""
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
    return ctx.run_command(args)
