"""The registration API: pipelines publish their dependencies and alert channels."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from aws_cdk import RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from constructs import Construct

from dpc_central.central_account.concurrency import RESERVED
from dpc_central.central_account.tables import TriggerTables
from dpc_central.common.function import DpcFunction
from dpc_central.common.nag import suppress
from dpc_central.conventions import HANDLER_REGISTRATION, REGISTRATION_API_NAME


class RegistrationApi(Construct):
    """API Gateway REST API with IAM authorization in front of the registration Lambda.

    ``PUT|DELETE /pipelines/{account}/{name}``, ``GET /pipelines`` and
    ``PUT|DELETE|GET /accounts/{account}``. The resource policy
    admits only the organisation or the member accounts; the handler checks that the
    caller's account (``requestContext.identity.accountId``) owns the pipeline it writes.

    Attributes: ``api``, ``handler``.
    """

    def __init__(self, scope: Construct, id: str, *, tables: TriggerTables,
                 org_id: str | None, member_accounts: Sequence[str], code_dir: Path,
                 alarm_topic: sns.ITopic, layers: Sequence[lambda_.ILayerVersion] = ()) -> None:
        super().__init__(scope, id)
        self.handler = DpcFunction(
            self, "Handler", handler=HANDLER_REGISTRATION, code_dir=code_dir,
            environment=tables.environment, alarm_topic=alarm_topic, layers=layers,
            description="dpc registration API: dependencies and alert channels",
            reserved_concurrency=RESERVED["registration"],
        )
        tables.grant_engine(self.handler.function)
        conditions: list[iam.PolicyStatement] = []
        if org_id:
            conditions.append(iam.PolicyStatement(
                actions=["execute-api:Invoke"], principals=[iam.AnyPrincipal()],
                resources=["execute-api:/*"],
                conditions={"StringEquals": {"aws:PrincipalOrgID": org_id}}))
        if member_accounts:
            conditions.append(iam.PolicyStatement(
                actions=["execute-api:Invoke"],
                principals=[iam.AccountPrincipal(a) for a in sorted(set(member_accounts))],
                resources=["execute-api:/*"]))
        access_logs = logs.LogGroup(self, "AccessLogs", retention=logs.RetentionDays.ONE_YEAR,
                                    removal_policy=RemovalPolicy.DESTROY)
        self.api = apigw.RestApi(
            self, "Api", rest_api_name=REGISTRATION_API_NAME,
            description="dpc pipeline registration (IAM auth)",
            policy=iam.PolicyDocument(statements=conditions),
            endpoint_types=[apigw.EndpointType.REGIONAL],
            cloud_watch_role=True,
            deploy_options=apigw.StageOptions(
                stage_name="v1", tracing_enabled=True,
                logging_level=apigw.MethodLoggingLevel.ERROR,
                access_log_destination=apigw.LogGroupLogDestination(access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=True, http_method=True, ip=True, protocol=True, request_time=True,
                    resource_path=True, response_length=True, status=True, user=True)),
            default_method_options=apigw.MethodOptions(
                authorization_type=apigw.AuthorizationType.IAM),
        )
        validator = self.api.add_request_validator(
            "Validator", validate_request_body=True, validate_request_parameters=True)
        integration = apigw.LambdaIntegration(self.handler.function)
        pipelines = self.api.root.add_resource("pipelines")
        pipelines.add_method("GET", integration, request_validator=validator)
        one = pipelines.add_resource("{account}").add_resource("{name}")
        params = {"method.request.path.account": True, "method.request.path.name": True}
        for verb in ("PUT", "DELETE", "GET"):
            one.add_method(verb, integration, request_validator=validator,
                           request_parameters=params)
        # Each user-account stack records itself here (Custom::DpcAccount): children of an
        # account that never ran setup-user-account are refused at registration.
        account = self.api.root.add_resource("accounts").add_resource("{account}")
        for verb in ("PUT", "DELETE", "GET"):
            account.add_method(verb, integration, request_validator=validator,
                               request_parameters={"method.request.path.account": True})
        suppress(self.api, [
            ("AwsSolutions-COG4", "callers are AWS accounts (pipelines' custom resources), "
             "authenticated with IAM SigV4, not Cognito users"),
            ("AwsSolutions-APIG3", "IAM auth and an organisation-only resource policy; no "
             "public traffic for a WAF to filter"),
            ("AwsSolutions-IAM4", "API Gateway's account-level CloudWatch role uses the "
             "managed AmazonAPIGatewayPushToCloudWatchLogs policy by design",
             ["Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
              "AmazonAPIGatewayPushToCloudWatchLogs"]),
        ])
