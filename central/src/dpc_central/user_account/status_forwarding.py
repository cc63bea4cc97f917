"""dpc's Step Functions status changes in this account → the central bus."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from aws_cdk import Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from dpc_central.common.function import DpcFunction, alarm_on_queue_depth, dead_letter_queue
from dpc_central.common.nag import region_in_finding, suppress
from dpc_central.conventions import (
    CENTRAL_BUS_NAME,
    ENV_CENTRAL_BUS,
    FORWARDED_STATUS_SOURCE,
    HANDLER_STATUS_FORWARDER,
    SFN_DETAIL_TYPE,
    SFN_SOURCE,
)


def central_bus_arn(scope: Construct, central_account: str) -> str:
    """ARN of the central bus (same region as ``scope``'s stack)."""
    stack = Stack.of(scope)
    return (f"arn:{stack.partition}:events:{stack.region}:{central_account}:"
            f"event-bus/{CENTRAL_BUS_NAME}")


class StatusForwarding(Construct):
    """A rule on the default bus (where AWS puts ``aws.states`` events) → the status
    forwarder (:mod:`dpc_central.handlers.status_forwarder`), which puts the events of
    dpc's state machines (tagged ``dpc-pipeline``), without their data, on the central
    bus. AWS's status events carry the run's input, output, error and cause; a rule
    target that is another account's bus would forward them whole, for every state
    machine of the account (docs/aws.md, "Status forwarding").

    Attributes: ``rule``, ``dlq``, ``handler``.
    """

    def __init__(self, scope: Construct, id: str, *, central_account: str, code_dir: Path,
                 layers: Sequence[lambda_.ILayerVersion] = ()) -> None:
        super().__init__(scope, id)
        stack = Stack.of(self)
        arn = central_bus_arn(self, central_account)
        self.handler = DpcFunction(
            self, "Handler", handler=HANDLER_STATUS_FORWARDER, code_dir=code_dir,
            layers=layers, environment={ENV_CENTRAL_BUS: arn}, timeout=Duration.seconds(30),
            description="dpc: forwards dpc's run status changes, without data, to central")
        fn = self.handler.function
        fn.add_to_role_policy(iam.PolicyStatement(
            sid="PutOnCentralBus", actions=["events:PutEvents"], resources=[arn],
            conditions={"StringEquals": {"events:source": FORWARDED_STATUS_SOURCE}}))
        fn.add_to_role_policy(iam.PolicyStatement(
            sid="ReadStateMachineTags", actions=["states:ListTagsForResource"],
            resources=[f"arn:{stack.partition}:states:{stack.region}:{stack.account}:"
                       "stateMachine:*"]))
        acct = "<AWS::AccountId>" if stack.resolve(stack.account) != stack.account \
            else stack.account
        suppress(self.handler, [("AwsSolutions-IAM5", "which state machines are dpc's is "
                                 "read from their tags (pipelines are deployed later, by "
                                 "pipeline stacks); read-only",
                                 [f"Resource::arn:<AWS::Partition>:states:"
                                  f"{region_in_finding(self)}:{acct}:stateMachine:*"])])
        self.dlq = dead_letter_queue(self, "Dlq")
        self.dlq_alarm = alarm_on_queue_depth(self, "DlqAlarm", queue=self.dlq, topic=None)
        self.rule = events.Rule(
            self, "Rule", description="Step Functions status changes to the dpc forwarder",
            event_pattern=events.EventPattern(source=[SFN_SOURCE], detail_type=[SFN_DETAIL_TYPE]),
            targets=[targets.LambdaFunction(fn, dead_letter_queue=self.dlq, retry_attempts=8)],
        )
