"""The read-only role the central reconciler assumes in this account."""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

from dpc_central.common.nag import region_in_finding, suppress
from dpc_central.conventions import RECONCILER_READ_ROLE, regional


class ReconcilerReadRole(Construct):
    """Lets the central account list and describe this account's executions, nothing
    else. Attribute: ``role``."""

    def __init__(self, scope: Construct, id: str, *, central_account: str) -> None:
        super().__init__(scope, id)
        stack = Stack.of(self)
        self.role = iam.Role(
            self, "Role", role_name=regional(RECONCILER_READ_ROLE, stack.region),
            assumed_by=iam.AccountPrincipal(central_account),
            description="dpc central reconciler: read executions")
        sm = f"arn:{stack.partition}:states:{stack.region}:{stack.account}:stateMachine:*"
        ex = f"arn:{stack.partition}:states:{stack.region}:{stack.account}:execution:*:*"
        self.role.add_to_policy(iam.PolicyStatement(
            actions=["states:ListExecutions", "states:DescribeStateMachine"], resources=[sm]))
        self.role.add_to_policy(iam.PolicyStatement(
            actions=["states:DescribeExecution"], resources=[ex]))
        region = region_in_finding(self)
        acct = "<AWS::AccountId>" if stack.resolve(stack.account) != stack.account \
            else stack.account
        suppress(self.role, [("AwsSolutions-IAM5", "the reconciler reads executions of every "
                              "pipeline of the account (state machines are created later, by "
                              "pipeline stacks); read-only actions",
                              [f"Resource::arn:<AWS::Partition>:states:{region}:{acct}:"
                               "stateMachine:*",
                               f"Resource::arn:<AWS::Partition>:states:{region}:{acct}:"
                               "execution:*:*"])])
