"""The execution tracker: run and step events → the pipeline's SNS topic."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from aws_cdk import Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from constructs import Construct

from dpc_central.central_account.concurrency import RESERVED
from dpc_central.central_account.tables import TriggerTables
from dpc_central.common.function import DpcFunction, alarm_on_queue_depth, dead_letter_queue
from dpc_central.common.nag import region_in_finding, suppress
from dpc_central.conventions import (
    FORWARDED_STATUS_SOURCE,
    HANDLER_EXECUTION_TRACKER,
    RUN_STATUS_SOURCE,
    SFN_SOURCE,
)

#: Pipeline topics are named ``dpc-<pipeline>`` in their accounts.
TOPIC_PREFIX = "dpc-"


def grant_publish_to_pipeline_topics(handler: DpcFunction, member_accounts: Sequence[str], *,
                                     org_id: str | None, why: str) -> None:
    """Let ``handler`` publish to any pipeline's ``dpc-<pipeline>`` topic in the listed
    member accounts (``aws:ResourceAccount``) and in every account of the organisation
    ``org_id`` (also those that join after this stack: ``aws:ResourceOrgID``), encrypting
    with the topic's key.

    Pipeline topics are encrypted with their own customer keys: publishing across
    accounts needs the key actions in this identity policy too (the key policies grant
    the central account), and only through SNS in this region.
    """
    stack = Stack.of(handler)
    accounts = sorted(set(member_accounts))
    region = region_in_finding(handler)
    via_sns = {"kms:ViaService": f"sns.{stack.region}.amazonaws.com"}
    findings: list[str] = []
    fn = handler.function
    if org_id:
        in_org = {"aws:ResourceOrgID": org_id}
        fn.add_to_role_policy(iam.PolicyStatement(
            sid="PublishToOrganisationPipelineTopics", actions=["sns:Publish"],
            resources=[f"arn:{stack.partition}:sns:{stack.region}:*:{TOPIC_PREFIX}*"],
            conditions={"StringEquals": in_org}))
        fn.add_to_role_policy(iam.PolicyStatement(
            sid="EncryptForOrganisationPipelineTopics",
            actions=["kms:GenerateDataKey*", "kms:Decrypt"],
            resources=[f"arn:{stack.partition}:kms:{stack.region}:*:key/*"],
            conditions={"StringEquals": {**via_sns, **in_org}}))
        findings += [f"Resource::arn:<AWS::Partition>:sns:{region}:*:{TOPIC_PREFIX}*",
                     f"Resource::arn:<AWS::Partition>:kms:{region}:*:key/*"]
    if accounts:
        # The account in a condition, not one ARN per account: at about 140 listed
        # accounts the ARNs outgrow the managed policy CDK moves them to (6,144
        # characters), and IAM refuses the stack (dpc_central.quotas).
        listed = {"aws:ResourceAccount": accounts}
        fn.add_to_role_policy(iam.PolicyStatement(
            sid="PublishToPipelineTopics", actions=["sns:Publish"],
            resources=[f"arn:{stack.partition}:sns:{stack.region}:*:{TOPIC_PREFIX}*"],
            conditions={"StringEquals": listed}))
        fn.add_to_role_policy(iam.PolicyStatement(
            sid="EncryptForPipelineTopics", actions=["kms:GenerateDataKey*", "kms:Decrypt"],
            resources=[f"arn:{stack.partition}:kms:{stack.region}:*:key/*"],
            conditions={"StringEquals": {**via_sns, **listed}}))
        findings += [f for f in (f"Resource::arn:<AWS::Partition>:sns:{region}:*:{TOPIC_PREFIX}*",
                                 f"Resource::arn:<AWS::Partition>:kms:{region}:*:key/*")
                     if f not in findings]
    if findings:
        suppress(handler, [("AwsSolutions-IAM5", f"{why}, encrypting with that topic's key "
                            "(kms:ViaService SNS only); topics and keys are created by pipeline "
                            "stacks after this stack, in listed accounts or in any account of "
                            "the organisation (aws:ResourceOrgID)",
                            [*findings, "Action::kms:GenerateDataKey*"])])


class ExecutionTracker(Construct):
    """Formats run and step events by the pipeline's notification type and publishes
    them to the pipeline's SNS topic (``dpc-<pipeline>`` in the pipeline's account).

    Attributes: ``handler``, ``rule``, ``dlq``.
    """

    def __init__(self, scope: Construct, id: str, *, bus: events.IEventBus,
                 tables: TriggerTables, member_accounts: Sequence[str], code_dir: Path,
                 alarm_topic: sns.ITopic, org_id: str | None = None,
                 layers: Sequence[lambda_.ILayerVersion] = ()) -> None:
        super().__init__(scope, id)
        self.handler = DpcFunction(
            self, "Handler", handler=HANDLER_EXECUTION_TRACKER, code_dir=code_dir,
            environment=tables.environment, alarm_topic=alarm_topic, layers=layers,
            description="dpc execution tracker: notifications per pipeline",
            reserved_concurrency=RESERVED["execution-tracker"],
        )
        tables.registry.grant_read_data(self.handler.function)
        # Run records (start time, logical date) complete the notes it formats.
        tables.runs.grant_read_data(self.handler.function)
        tables.acknowledge_index_access(self.handler.function)
        grant_publish_to_pipeline_topics(
            self.handler, member_accounts, org_id=org_id,
            why="publishes to the dpc-<pipeline> topic of whichever pipeline an event is about")
        self.dlq = dead_letter_queue(self, "RuleDlq")
        self.dlq_alarm = alarm_on_queue_depth(self, "RuleDlqAlarm", queue=self.dlq,
                                              topic=alarm_topic)
        self.rule = events.Rule(
            self, "RunEvents", event_bus=bus, description="run and step events to notify",
            event_pattern=events.EventPattern(
                source=[SFN_SOURCE, FORWARDED_STATUS_SOURCE, RUN_STATUS_SOURCE]),
            targets=[targets.LambdaFunction(self.handler.function, dead_letter_queue=self.dlq,
                                            retry_attempts=8)])
