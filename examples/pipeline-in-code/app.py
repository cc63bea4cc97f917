"""Pipeline X in code: what pipeline.yaml says, plus a step type and resources it cannot.

Deploy: ``dpc deploy --app "python app.py"`` (``dpc synth --app "python app.py"`` writes
cdk.out only). See README.md beside this file.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks

from dpc_central.api import (
    PipelineApp,
    PipelineStack,
    StepConfig,
    acknowledge,
    pipeline,
    steps,
)
from dpc_core.types import AwsStepContext

ACCOUNT = "333333333333"
#: The bucket the marker steps write to, declared below in the same stack.
MARKERS_BUCKET = f"rent-journey-markers-{ACCOUNT}"


class Marker(StepConfig):
    """Config of the ``s3-marker`` step type: which bucket, and the key's prefix."""

    bucket: str
    prefix: str = "markers"


@steps.custom("s3-marker", config=Marker, description="write <prefix>/<date>/<step> to S3")
def s3_marker(ctx: AwsStepContext) -> sfn.IChainable:
    """The step's AWS form: one Step Functions task, built in the step's own scope."""
    jp = sfn.JsonPath
    step = ctx.step
    return tasks.CallAwsService(
        ctx.scope, f"{step.name} marker", service="s3", action="putObject",
        parameters={"Bucket": step.bucket, "Body": "done",
                    "Key": jp.format(f"{step.prefix}/{{}}/{step.name}",
                                     jp.string_at("$.dpc.logicalDate"))},
        iam_resources=[f"arn:aws:s3:::{step.bucket}/{step.prefix}/*"],
        result_path=jp.DISCARD)


app = PipelineApp()
pipeline_x = pipeline(
    name="pipeline-x-code",
    account=ACCOUNT,
    owner={"team": "rent-journey", "contact": "rent-journey@example.com"},
    trigger={"executions": {"allOf": [
        {"name": "listings", "account": "111111111111", "status": ["SUCCEEDED"]},
        {"name": "searches", "account": "222222222222", "status": ["SUCCEEDED"]},
    ]}},
    steps=[
        steps.spark("metric-x", script="jobs/metric_x.py",
                    conf={"spark.sql.shuffle.partitions": "8"}),
        steps.s3_marker("metric-x-done", bucket=MARKERS_BUCKET),
    ],
    compute={"type": "emr"},
    notifications={"type": "FAILURES_ONLY",
                   "targets": [{"channel": "EMAIL", "addresses": ["rent-journey@example.com"]}]},
)
stack = PipelineStack(app, pipeline=pipeline_x)

# Beside the pipeline, in the same stack: the markers' bucket, and a queue that hears
# when a run of pipeline X succeeded (for a consumer outside dpc).
markers = s3.Bucket(stack, "Markers", bucket_name=MARKERS_BUCKET, enforce_ssl=True,
                    encryption=s3.BucketEncryption.S3_MANAGED,
                    block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
                    removal_policy=RemovalPolicy.RETAIN)
dead_letters = sqs.Queue(stack, "SucceededDeadLetters", enforce_ssl=True,
                         encryption=sqs.QueueEncryption.SQS_MANAGED,
                         retention_period=Duration.days(14))
succeeded = sqs.Queue(stack, "Succeeded", enforce_ssl=True,
                      encryption=sqs.QueueEncryption.SQS_MANAGED,
                      dead_letter_queue=sqs.DeadLetterQueue(queue=dead_letters,
                                                            max_receive_count=5))
events.Rule(stack, "SucceededRule", event_pattern=events.EventPattern(
    source=["aws.states"], detail_type=["Step Functions Execution Status Change"],
    detail={"stateMachineArn": [stack.machine.state_machine.state_machine_arn],
            "status": ["SUCCEEDED"]}),
    targets=[targets.SqsQueue(succeeded)])

# cdk-nag runs at synth (PipelineApp); each accepted finding says why, next to its resource.
acknowledge(markers, [("AwsSolutions-S1", "markers are a few bytes a day; access logs "
                                          "would cost more than they tell")])
acknowledge(dead_letters, [("AwsSolutions-SQS3", "this queue is the dead-letter queue")])
acknowledge(stack.machine.state_machine, [(
    f"AwsSolutions-IAM5[Resource::arn:aws:s3:::{MARKERS_BUCKET}/markers/*]",
    "the marker step writes one object per run and day, under markers/ only")])

app.synth()
