"""The central EventBridge bus and who may put events on it."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from constructs import Construct

from dpc_central.conventions import CENTRAL_BUS_NAME


class CentralBus(Construct):
    """The bus status events arrive on and trigger events leave from.

    Its resource policy admits ``events:PutEvents`` only from the organisation
    (``aws:PrincipalOrgID``) or from the listed member accounts. Attribute: ``bus``.
    """

    def __init__(self, scope: Construct, id: str, *, org_id: str | None,
                 member_accounts: Sequence[str]) -> None:
        super().__init__(scope, id)
        if not org_id and not member_accounts:
            raise ValueError("the central bus needs --org-id or at least one --member-account")
        self.bus = events.EventBus(self, "Bus", event_bus_name=CENTRAL_BUS_NAME)
        if org_id:
            self.bus.add_to_resource_policy(iam.PolicyStatement(
                sid="OrganisationMayPutEvents", actions=["events:PutEvents"],
                principals=[iam.AnyPrincipal()], resources=[self.bus.event_bus_arn],
                conditions={"StringEquals": {"aws:PrincipalOrgID": org_id}},
            ))
        if member_accounts:
            self.bus.add_to_resource_policy(iam.PolicyStatement(
                sid="MemberAccountsMayPutEvents", actions=["events:PutEvents"],
                principals=[iam.AccountPrincipal(a) for a in sorted(set(member_accounts))],
                resources=[self.bus.event_bus_arn],
            ))
