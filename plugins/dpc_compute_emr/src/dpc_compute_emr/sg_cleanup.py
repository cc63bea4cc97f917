"""A custom resource that lets the team stack be deleted after EMR has run."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from aws_cdk import CustomResource, Duration, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import custom_resources as cr
from constructs import Construct

from dpc_central.plugin_api import LAMBDA_BASICS, DpcFunction, logical_ref, suppress
from dpc_compute_emr.handlers.sg_rules_cleanup import RESOURCE_TYPE
from dpc_compute_emr.names import HANDLER_SG_RULES_CLEANUP


class SecurityGroupRulesCleanup(Construct):
    """``Custom::DpcEmrSecurityGroupRules`` over ``groups``: on stack deletion it revokes
    the rules EMR added between them (:mod:`dpc_compute_emr.handlers.sg_rules_cleanup`), so
    EC2 can delete the groups. It references the groups, so CloudFormation deletes it
    first. Attributes: ``handler``, ``resource``.
    """

    def __init__(self, scope: Construct, id: str, *, groups: Sequence[ec2.ISecurityGroup],
                 code_dir: Path, layers: Sequence[lambda_.ILayerVersion] = ()) -> None:
        super().__init__(scope, id)
        stack = Stack.of(self)
        self.handler = DpcFunction(
            self, "Handler", handler=HANDLER_SG_RULES_CLEANUP, code_dir=code_dir,
            layers=layers, timeout=Duration.minutes(2),
            description="dpc: revokes EMR's cross-group rules when the team stack is deleted")
        fn = self.handler.function
        ids = [g.security_group_id for g in groups]
        # DescribeSecurityGroupRules has no resource type (Service Authorization Reference).
        fn.add_to_role_policy(iam.PolicyStatement(
            sid="ListRules", actions=["ec2:DescribeSecurityGroupRules"], resources=["*"]))
        fn.add_to_role_policy(iam.PolicyStatement(
            sid="RevokeRulesOfEmrGroups",
            actions=["ec2:RevokeSecurityGroupIngress", "ec2:RevokeSecurityGroupEgress"],
            resources=[f"arn:{stack.partition}:ec2:{stack.region}:{stack.account}:"
                       f"security-group/{i}" for i in ids]))
        suppress(self.handler, [("AwsSolutions-IAM5", "DescribeSecurityGroupRules has no "
                                 "resource-level permissions; revoking is limited to the "
                                 "three EMR groups", ["Resource::*"])])
        provider = cr.Provider(
            self, "Provider", on_event_handler=fn,
            log_group=logs.LogGroup(self, "ProviderLogs", retention=logs.RetentionDays.ONE_MONTH,
                                    removal_policy=RemovalPolicy.DESTROY))
        suppress(provider, [
            *LAMBDA_BASICS,
            ("AwsSolutions-IAM5", "the provider framework invokes the onEvent function and "
             "its versions (<function ARN>:*), nothing else",
             [f"Resource::{logical_ref(fn)}:*"]),
        ])
        self.resource = CustomResource(self, "Resource", service_token=provider.service_token,
                                       resource_type=RESOURCE_TYPE,
                                       properties={"GroupIds": ids})
