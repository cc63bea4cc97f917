"""An outside team's step plugin, as source: what a team writes to add a step type without
changing the core (loaded from a temporary folder by the CDK tests)."""

PLUGIN = '''
"""An outside team's step plugin: writes a marker object to S3 (no core change)."""
from dpc_core import hookimpl
from dpc_core.types import LocalCommand, StepConfig, StepType

DPC_PLUGIN_API = 1


class MarkerStep(StepConfig):
    bucket: str


def _aws(ctx):
    from aws_cdk import aws_stepfunctions as sfn
    from aws_cdk import aws_stepfunctions_tasks as tasks

    jp = sfn.JsonPath
    return tasks.CallAwsService(
        ctx.scope, f"{ctx.step.name} marker", service="s3", action="putObject",
        parameters={"Bucket": ctx.step.bucket, "Body": "done",
                    "Key": jp.format("markers/{}/" + ctx.step.name,
                                     jp.string_at("$.dpc.logicalDate"))},
        iam_resources=[f"arn:aws:s3:::{ctx.step.bucket}/markers/*"],
        result_path=jp.DISCARD)


@hookimpl
def dpc_step_types():
    yield StepType(name="acme-marker", config=MarkerStep, aws_states=_aws,
                   local=lambda step, ctx: LocalCommand(["true"]))
'''
