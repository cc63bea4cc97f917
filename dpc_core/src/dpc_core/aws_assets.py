"""CDK helpers for plugins that contribute Step Functions states (public API).

Imported only while a CDK app is built (``aws_cdk`` is imported inside the functions).
"""

from __future__ import annotations

from typing import Any

from dpc_core.cdk_values import partition, stack_info
from dpc_core.types import AslState, AwsStepContext


def emr_add_step(ctx: AwsStepContext, *, jar: str, args: list[str]) -> AslState:
    """``addStep.sync`` of ``jar`` with ``args`` on the compute's cluster, the step failing
    after the compute's ``stepTimeoutMinutes``: what CDK's ``EmrAddStep`` task renders and
    grants, as plain ASL (no jsii round trip)."""
    aws = partition()
    info = stack_info(ctx.scope)
    state: dict[str, Any] = {"Type": "Task"}
    timeout = getattr(ctx.compute, "step_timeout_minutes", None)
    if timeout:
        # Shorter than the run's: a stuck step fails into the catch path, which
        # terminates the cluster, instead of the run timing out, which skips it.
        state["TimeoutSeconds"] = int(timeout) * 60
    state.update({
        "ResultPath": None,
        "Resource": f"arn:{aws}:states:::elasticmapreduce:addStep.sync",
        "Parameters": {"ClusterId.$": ctx.cluster_id_path, "Step": {
            "Name": ctx.step.name, "ActionOnFailure": "CONTINUE",
            "HadoopJarStep": {"Jar": jar, "Args": args}}}})
    where = f"{info.region}:{info.account}"
    return AslState(ctx.step.name, state, policy=[
        {"Action": ["elasticmapreduce:AddJobFlowSteps", "elasticmapreduce:DescribeStep",
                    "elasticmapreduce:CancelSteps"], "Effect": "Allow",
         "Resource": f"arn:{info.partition}:elasticmapreduce:{where}:cluster/*"},
        {"Action": ["events:PutTargets", "events:PutRule", "events:DescribeRule"],
         "Effect": "Allow",
         "Resource": f"arn:{info.partition}:events:{where}:rule/"
                     "StepFunctionsGetEventForEMRAddJobFlowStepsRule"}])
