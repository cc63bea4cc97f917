"""Step Functions status changes of this account → the central bus."""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from constructs import Construct

from dpc_central.common.function import dead_letter_queue
from dpc_central.conventions import CENTRAL_BUS_NAME, SFN_DETAIL_TYPE, SFN_SOURCE


def central_bus_arn(scope: Construct, central_account: str) -> str:
    """ARN of the central bus (same region as ``scope``'s stack)."""
    stack = Stack.of(scope)
    return (f"arn:{stack.partition}:events:{stack.region}:{central_account}:"
            f"event-bus/{CENTRAL_BUS_NAME}")


class StatusForwarding(Construct):
    """A rule on the default bus (where AWS puts ``aws.states`` events) forwarding every
    execution status change to the central bus, with a role and a DLQ.

    Attributes: ``rule``, ``dlq``, ``role``.
    """

    def __init__(self, scope: Construct, id: str, *, central_account: str) -> None:
        super().__init__(scope, id)
        arn = central_bus_arn(self, central_account)
        central = events.EventBus.from_event_bus_arn(self, "CentralBus", arn)
        self.dlq = dead_letter_queue(self, "Dlq")
        self.role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("events.amazonaws.com"),
                             description="forwards Step Functions status events to dpc central")
        self.rule = events.Rule(
            self, "Rule", description="Step Functions status changes to the dpc central bus",
            event_pattern=events.EventPattern(source=[SFN_SOURCE], detail_type=[SFN_DETAIL_TYPE]),
            targets=[targets.EventBus(central, role=self.role, dead_letter_queue=self.dlq)],
        )
