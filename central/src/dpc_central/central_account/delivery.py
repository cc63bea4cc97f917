"""Targeted delivery: each trigger event goes to its child's account, and only there."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns as sns
from constructs import Construct

from dpc_central.common.function import alarm_on_queue_depth, dead_letter_queue
from dpc_central.conventions import PIPELINE_BUS_NAME, TRIGGER_DETAIL_TYPE, TRIGGER_SOURCE


def pipeline_bus_arn(scope: Construct, account: str) -> str:
    """ARN of a member account's pipeline bus (same region as the central stack)."""
    stack = Stack.of(scope)
    return f"arn:{stack.partition}:events:{stack.region}:{account}:event-bus/{PIPELINE_BUS_NAME}"


class TargetedDelivery(Construct):
    """One rule per member account: trigger events whose ``detail.account`` is that
    account go to that account's pipeline bus — one delivery per trigger, where the seed
    broadcast to every account.

    Attributes: ``rules`` (account → rule), ``role``, ``dlq``.
    """

    def __init__(self, scope: Construct, id: str, *, bus: events.IEventBus,
                 member_accounts: Sequence[str], alarm_topic: sns.ITopic) -> None:
        super().__init__(scope, id)
        accounts = sorted(set(member_accounts))
        self.dlq = dead_letter_queue(self, "Dlq")
        self.dlq_alarm = alarm_on_queue_depth(self, "DlqAlarm", queue=self.dlq, topic=alarm_topic)
        # Cross-account bus targets need a role; it may put only on the member buses.
        self.role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("events.amazonaws.com"),
                             description="puts trigger events on member accounts' pipeline buses")
        self.rules: dict[str, events.Rule] = {}
        for account in accounts:
            arn = pipeline_bus_arn(self, account)
            target_bus = events.EventBus.from_event_bus_arn(self, f"Bus{account}", arn)
            self.rules[account] = events.Rule(
                self, f"To{account}", event_bus=bus,
                description=f"trigger events for pipelines of account {account}",
                event_pattern=events.EventPattern(
                    source=[TRIGGER_SOURCE], detail_type=[TRIGGER_DETAIL_TYPE],
                    detail={"account": [account]}),
                targets=[targets.EventBus(target_bus, role=self.role, dead_letter_queue=self.dlq)],
            )
