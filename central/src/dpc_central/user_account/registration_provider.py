"""The custom-resource provider that registers pipelines with the central API."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from aws_cdk import CustomResource, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import custom_resources as cr
from constructs import Construct

from dpc_central.common.function import DpcFunction
from dpc_central.common.nag import LAMBDA_BASICS, logical_ref, region_in_finding, suppress
from dpc_central.conventions import ENV_REGISTRATION_URL, HANDLER_REGISTRATION_CLIENT
from dpc_central.handlers.registration_client import ACCOUNT_RESOURCE


class RegistrationProvider(Construct):
    """The provider of the ``Custom::DpcRegistration`` resources of pipeline stacks:
    CDK's custom-resource provider framework, whose ``onEvent`` handler
    (:mod:`dpc_central.handlers.registration_client`) sends create/update →
    ``PUT /pipelines/{account}/{name}``, delete → ``DELETE``, signed with SigV4 (IAM
    auth). The framework answers CloudFormation's pre-signed URL, so a handler error
    fails the deployment with its message instead of leaving the stack waiting.

    It also holds the account's own ``Custom::DpcAccount`` resource (``account_record``):
    ``PUT /accounts/{account}`` at deploy, ``DELETE`` when the stack goes, so the central
    API knows the account can receive triggers.

    Attributes: ``handler`` (the onEvent function), ``provider``, ``service_token``
    (what pipeline stacks' resources name, published in SSM), ``account_record``.
    """

    def __init__(self, scope: Construct, id: str, *, central_account: str,
                 registration_url: str, code_dir: Path,
                 layers: Sequence[lambda_.ILayerVersion] = ()) -> None:
        super().__init__(scope, id)
        self.handler = DpcFunction(
            self, "Handler", handler=HANDLER_REGISTRATION_CLIENT, code_dir=code_dir,
            environment={ENV_REGISTRATION_URL: registration_url}, layers=layers,
            description="dpc: registers pipelines with the central API",
            timeout=Duration.minutes(2))
        stack = Stack.of(self)
        self.handler.function.add_to_role_policy(iam.PolicyStatement(
            actions=["execute-api:Invoke"],
            resources=[f"arn:{stack.partition}:execute-api:{stack.region}:{central_account}:"
                       f"*/v1/*/{path}/*" for path in ("pipelines", "accounts")]))
        suppress(self.handler, [("AwsSolutions-IAM5", "the central API's id is not known to "
                                 "this account at synth; the grant is limited to its "
                                 "/pipelines resources in the central account",
                                 [f"Resource::arn:<AWS::Partition>:execute-api:"
                                  f"{region_in_finding(self)}:{central_account}:"
                                  f"*/v1/*/{path}/*" for path in ("pipelines", "accounts")])])
        self.provider = cr.Provider(
            self, "Provider", on_event_handler=self.handler.function,
            log_group=logs.LogGroup(self, "ProviderLogs", retention=logs.RetentionDays.ONE_MONTH,
                                    removal_policy=RemovalPolicy.DESTROY))
        self.service_token = self.provider.service_token
        # The account itself is recorded with the central API: it now has a pipeline bus
        # that admits the central account's triggers, so its children may register.
        self.account_record = CustomResource(
            self, "AccountRecord", service_token=self.service_token,
            resource_type=ACCOUNT_RESOURCE)
        # The framework's own function (CDK-maintained) invokes the onEvent function,
        # any of its versions (`<arn>:*`) as the framework grants it.
        suppress(self.provider, [
            *LAMBDA_BASICS,
            ("AwsSolutions-IAM5", "the provider framework invokes the onEvent function and "
             "its versions (<function ARN>:*), nothing else",
             [f"Resource::{logical_ref(self.handler.function)}:*"]),
        ])
