"""Reconciliation: terminal statuses that never arrived are fetched on a schedule."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from aws_cdk import Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from constructs import Construct

from dpc_central.central_account.concurrency import RESERVED
from dpc_central.central_account.execution_tracker import grant_publish_to_pipeline_topics
from dpc_central.central_account.tables import TriggerTables
from dpc_central.common.function import DpcFunction, alarm_on_queue_depth, dead_letter_queue
from dpc_central.common.nag import region_in_finding, suppress
from dpc_central.conventions import (
    ENV_CENTRAL_BUS,
    ENV_READ_ROLE_NAME,
    HANDLER_RECONCILER,
    RECONCILER_READ_ROLE,
    regional,
)


def grant_assume_read_roles(handler: DpcFunction, accounts: Sequence[str], *,
                            org_id: str | None) -> None:
    """Let ``handler`` assume ``RECONCILER_READ_ROLE`` in the listed accounts (the role
    name in any account, ``aws:ResourceAccount`` one of them) and, with
    ``org_id``, in every account of the organisation, also those that join after this
    stack: the role ARN's account is a wildcard and ``aws:ResourceOrgID`` (the
    organisation of the account that owns the role) must be ``org_id``. An account
    outside the organisation is refused by this policy whatever its trust policy says.

    Without an organisation and without listed accounts (only possible when the construct
    is built directly: setup requires one or the other) the grant is the role name in any
    account, as before; each read role's trust policy admits only the central account.
    """
    stack = Stack.of(handler)
    fn = handler.function
    name = regional(RECONCILER_READ_ROLE, stack.region)

    def role(account: str) -> str:
        return f"arn:{stack.partition}:iam::{account}:role/{name}"

    if accounts:
        # One resource and the accounts in a condition, not one ARN per account: at 85
        # listed accounts the ARNs alone outgrow a managed policy (6,144 characters, the
        # overflow CDK moves them to), and IAM refuses the stack (dpc_central.quotas).
        fn.add_to_role_policy(iam.PolicyStatement(
            sid="AssumeListedReadRoles", actions=["sts:AssumeRole"],
            resources=[role("*")],
            conditions={"StringEquals": {"aws:ResourceAccount": list(accounts)}}))
    if org_id:
        fn.add_to_role_policy(iam.PolicyStatement(
            sid="AssumeOrganisationReadRoles", actions=["sts:AssumeRole"],
            resources=[role("*")],
            conditions={"StringEquals": {"aws:ResourceOrgID": org_id}}))
    elif not accounts:
        fn.add_to_role_policy(iam.PolicyStatement(
            actions=["sts:AssumeRole"], resources=[role("*")]))
    why = ("organisation mode: accounts that join the organisation after this stack "
           "are reconciled without a redeploy; the role name is fixed, "
           "aws:ResourceOrgID limits it to the organisation's accounts and each "
           "account's trust policy admits only this account") if org_id else (
           "listed accounts: the role name is fixed, aws:ResourceAccount limits it "
           "to the listed accounts and each account's trust policy admits only this "
           "account") if accounts else (
           "no account listed: the role name is fixed and each account's trust "
           "policy admits only this account")
    suppress(handler, [("AwsSolutions-IAM5", why,
                        [f"Resource::arn:<AWS::Partition>:iam::*:role/"
                         f"{regional(RECONCILER_READ_ROLE, region_in_finding(handler))}"
                         ])])


class Reconciler(Construct):
    """Every ``interval`` the reconciler lists recent executions of registered pipelines
    through each account's read-only role and feeds missing terminal statuses to the
    engine (``TIMED_OUT`` and ``ABORTED`` runs cannot report themselves).

    It puts the triggers it decides, and re-sends those whose claims were never marked
    delivered, on the central bus.

    Attributes: ``handler``, ``rule``.
    """

    def __init__(self, scope: Construct, id: str, *, tables: TriggerTables,
                 bus: events.IEventBus,
                 member_accounts: Sequence[str], code_dir: Path, alarm_topic: sns.ITopic,
                 org_id: str | None = None, interval: Duration | None = None,
                 layers: Sequence[lambda_.ILayerVersion] = ()) -> None:
        super().__init__(scope, id)
        self.handler = DpcFunction(
            self, "Handler", handler=HANDLER_RECONCILER, code_dir=code_dir,
            environment={**tables.environment, ENV_CENTRAL_BUS: bus.event_bus_name,
                         ENV_READ_ROLE_NAME: regional(RECONCILER_READ_ROLE,
                                                      Stack.of(self).region)},
            description="dpc reconciler: statuses lost on the way", alarm_topic=alarm_topic,
            layers=layers, timeout=Duration.minutes(5), reserved_concurrency=RESERVED["reconciler"],
        )
        tables.grant_engine(self.handler.function)
        bus.grant_put_events_to(self.handler.function)
        accounts = sorted(set(member_accounts))
        grant_assume_read_roles(self.handler, accounts, org_id=org_id)
        # LATE/BLOCKED/RECOVERED notices go out the execution tracker's way.
        grant_publish_to_pipeline_topics(
            self.handler, accounts, org_id=org_id,
            why="health notices go to the dpc-<pipeline> topic of the pipeline concerned")
        self.dlq = dead_letter_queue(self, "RuleDlq")
        self.dlq_alarm = alarm_on_queue_depth(self, "RuleDlqAlarm", queue=self.dlq,
                                              topic=alarm_topic)
        self.rule = events.Rule(
            self, "Schedule", schedule=events.Schedule.rate(interval or Duration.minutes(15)),
            description="dpc reconciliation",
            targets=[targets.LambdaFunction(self.handler.function, dead_letter_queue=self.dlq,
                                            retry_attempts=2)])
