"""The custom-resource provider that registers pipelines with the central API."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from aws_cdk import Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from dpc_central.common.function import DpcFunction
from dpc_central.common.nag import region_in_finding, suppress
from dpc_central.conventions import ENV_REGISTRATION_URL, HANDLER_REGISTRATION_CLIENT


class RegistrationProvider(Construct):
    """A Lambda that CloudFormation calls for ``Custom::DpcRegistration`` resources of
    pipeline stacks: create/update → ``PUT /pipelines/{account}/{name}``, delete →
    ``DELETE``, signed with SigV4 (IAM auth). The Lambda is the service token itself
    (no provider framework), so it answers CloudFormation's pre-signed URL.

    Attribute: ``handler``.
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
                       "*/v1/*/pipelines/*"]))
        suppress(self.handler, [("AwsSolutions-IAM5", "the central API's id is not known to "
                                 "this account at synth; the grant is limited to its "
                                 "/pipelines resources in the central account",
                                 [f"Resource::arn:<AWS::Partition>:execute-api:"
                                  f"{region_in_finding(self)}:{central_account}:"
                                  "*/v1/*/pipelines/*"])])
