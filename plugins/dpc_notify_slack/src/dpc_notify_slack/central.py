"""SLACK in the central account: the poster Lambda, its thread table and the bot token.

Contributed through the ``dpc_central_constructs`` hook (:func:`add_slack_service`), from
:class:`dpc_central.plugin_api.CentralContext` alone: the central stack itself names no
channel. Pipeline topics in member accounts subscribe the poster by its fixed name
(``dpc-slack-poster``, :data:`POSTER_FUNCTION`).

Imported only while ``dpc setup-central-account`` builds the CDK app (it imports
``aws_cdk``).
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Acknowledgment, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from dpc_core.cdk_values import acknowledge
from dpc_notify_slack.aws import POSTER_FUNCTION
from dpc_notify_slack.poster import ENV_SLACK_SECRET_ARN, ENV_TABLE_SLACK_THREADS

#: Pipeline topics are named ``dpc-<pipeline>`` in their accounts.
TOPIC_PREFIX = "dpc-"
#: The poster's handler (its function name, POSTER_FUNCTION, is in ``aws``: user
#: accounts' pipeline stacks build its ARN from it).
POSTER_HANDLER = "dpc_notify_slack.poster.handle"


class SlackService(Construct):
    """The Slack poster Lambda (fixed name), the bot-token secret and the threads table
    (one item per execution: the channel and ``ts`` of each root message).

    The secret is created with a generated placeholder; the platform team puts the bot
    token in it after deploy (``aws secretsmanager put-secret-value``).
    Attributes: ``secret``, ``threads``, ``poster`` (a dpc Lambda: ``.function``).
    """

    def __init__(self, scope: Construct, id: str, *, central: Any) -> None:
        super().__init__(scope, id)
        self.secret = secretsmanager.Secret(
            self, "BotToken", description="Slack bot token of dpc (xoxb-...)",
            removal_policy=RemovalPolicy.RETAIN)
        # cdk-nag (run at synth by dpc) reads acknowledgements from CDK's validations.
        acknowledge(self.secret, Acknowledgment(
            id="AwsSolutions-SMG4", reason="a Slack bot token is rotated in Slack's admin "
                                           "console, not by a rotation Lambda"))
        self.threads = central.table(self, "Threads", key="executionArn")
        self.poster = central.function(
            self, "Poster", handler=POSTER_HANDLER, function_name=POSTER_FUNCTION,
            environment={ENV_SLACK_SECRET_ARN: self.secret.secret_arn,
                         ENV_TABLE_SLACK_THREADS: self.threads.table_name},
            description="dpc Slack poster: one thread per run")
        self.secret.grant_read(self.poster.function)
        self.threads.grant_read_write_data(self.poster.function)
        central.tables.registry.grant_read_data(self.poster.function)
        # Pipeline topics (``dpc-<pipeline>``) deliver to the poster (SNS → Lambda).
        stack = central.stack
        topics = f"arn:{stack.partition}:sns:{stack.region}"
        for account in sorted(set(central.member_accounts)):
            self.poster.function.add_permission(
                f"Sns{account}", principal=iam.ServicePrincipal("sns.amazonaws.com"),
                source_account=account, source_arn=f"{topics}:{account}:{TOPIC_PREFIX}*")
        if central.org_id:
            # Accounts that join the organisation after this stack: a Lambda permission
            # takes only SourceArn/SourceAccount for a service principal (no
            # aws:SourceOrgID condition), so it admits the dpc-* topics of any account and
            # the poster itself refuses a note whose topic is not in the account of the
            # registered pipeline it names (registration is limited to the organisation
            # by the registration API's resource policy).
            self.poster.function.add_permission(
                "SnsOrganisation", principal=iam.ServicePrincipal("sns.amazonaws.com"),
                source_arn=f"{topics}:*:{TOPIC_PREFIX}*")


def add_slack_service(scope: Any, central: Any) -> SlackService:
    """The hook's work: the Slack service under ``scope``."""
    return SlackService(scope, "Slack", central=central)
