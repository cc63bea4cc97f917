"""The account's pipeline bus: trigger events from the central account arrive here."""

from __future__ import annotations

from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from constructs import Construct

from dpc_central.conventions import PIPELINE_BUS_NAME, TRIGGER_SOURCE


class PipelineBus(Construct):
    """A bus named ``dpc-pipelines`` that only the central account may put
    ``dpc.trigger`` events on. Attribute: ``bus``."""

    def __init__(self, scope: Construct, id: str, *, central_account: str) -> None:
        super().__init__(scope, id)
        self.bus = events.EventBus(self, "Bus", event_bus_name=PIPELINE_BUS_NAME)
        self.bus.add_to_resource_policy(iam.PolicyStatement(
            sid="CentralAccountMayPutTriggers", actions=["events:PutEvents"],
            principals=[iam.AccountPrincipal(central_account)],
            resources=[self.bus.event_bus_arn],
            conditions={"StringEquals": {"events:source": [TRIGGER_SOURCE]}},
        ))
