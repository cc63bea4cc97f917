"""The Slack service: one thread per run, the bot token in Secrets Manager."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from constructs import Construct

from dpc_central.central_account.tables import TriggerTables
from dpc_central.common.function import DpcFunction
from dpc_central.common.nag import suppress
from dpc_central.conventions import (
    ENV_SLACK_SECRET_ARN,
    HANDLER_SLACK_POSTER,
    SLACK_POSTER_FUNCTION,
)


class SlackService(Construct):
    """The Slack poster Lambda (fixed name, so user accounts subscribe their pipeline
    topics to it), the bot-token secret and read/write on the threads table.

    The secret is created empty-ish (a generated placeholder); the platform team puts
    the bot token in it after deploy (``aws secretsmanager put-secret-value``).
    Attributes: ``secret``, ``poster``.
    """

    def __init__(self, scope: Construct, id: str, *, tables: TriggerTables,
                 member_accounts: Sequence[str], code_dir: Path, alarm_topic: sns.ITopic,
                 layers: Sequence[lambda_.ILayerVersion] = ()) -> None:
        super().__init__(scope, id)
        self.secret = secretsmanager.Secret(
            self, "BotToken", description="Slack bot token of dpc (xoxb-...)",
            removal_policy=RemovalPolicy.RETAIN)
        suppress(self.secret, [("AwsSolutions-SMG4", "a Slack bot token is rotated in Slack's "
                                "admin console, not by a rotation Lambda")])
        self.poster = DpcFunction(
            self, "Poster", handler=HANDLER_SLACK_POSTER, code_dir=code_dir,
            function_name=SLACK_POSTER_FUNCTION, alarm_topic=alarm_topic, layers=layers,
            environment={**tables.environment, ENV_SLACK_SECRET_ARN: self.secret.secret_arn},
            description="dpc Slack poster: one thread per run",
        )
        self.secret.grant_read(self.poster.function)
        tables.slack_threads.grant_read_write_data(self.poster.function)
        tables.registry.grant_read_data(self.poster.function)
        # Pipeline topics in member accounts deliver to the poster (SNS → Lambda).
        stack = Stack.of(self)
        for account in sorted(set(member_accounts)):
            self.poster.function.add_permission(
                f"Sns{account}", principal=iam.ServicePrincipal("sns.amazonaws.com"),
                source_account=account,
                source_arn=f"arn:{stack.partition}:sns:{stack.region}:{account}:*")
