"""SLACK in the central account: the poster Lambda, its thread table and the bot token.

Contributed through the ``dpc_central_constructs`` hook (:func:`add_slack_service`), from
:class:`dpc_central.plugin_api.CentralContext` alone: the central stack itself names no
channel. Pipeline topics in member accounts subscribe the poster's queue by its fixed
name (``dpc-slack-notes``, :data:`NOTES_QUEUE`).

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
from dpc_notify_slack.aws import NOTES_QUEUE, POSTER_FUNCTION
from dpc_notify_slack.poster import ENV_SLACK_SECRET_ARN, ENV_TABLE_SLACK_THREADS

#: Pipeline topics are named ``dpc-<pipeline>`` in their accounts.
TOPIC_PREFIX = "dpc-"
#: The poster's handler (its function name, POSTER_FUNCTION, is in ``aws``: user
#: accounts' pipeline stacks build its ARN from it).
POSTER_HANDLER = "dpc_notify_slack.poster.handle"
#: The poster's timeout (the queue's visibility timeout is six times it, as Lambda asks).
POSTER_TIMEOUT_S = 60


class SlackService(Construct):
    """The Slack poster Lambda (fixed name), the bot-token secret and the threads table
    (one item per execution: the channel and ``ts`` of each root message), and the
    queue the pipeline topics deliver to (``dpc-slack-notes``), which the poster consumes.

    The secret is created with a generated placeholder; the platform team puts the bot
    token in it after deploy (``aws secretsmanager put-secret-value``).
    Attributes: ``secret``, ``threads``, ``notes``, ``poster`` (a dpc Lambda:
    ``.function``).
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
            description="dpc Slack poster: one thread per run", timeout_s=POSTER_TIMEOUT_S)
        self.secret.grant_read(self.poster.function)
        self.threads.grant_read_write_data(self.poster.function)
        central.tables.registry.grant_read_data(self.poster.function)
        # Pipeline topics (``dpc-<pipeline>``) deliver to a queue the poster consumes
        # (SNS → SQS → Lambda): one queue-policy statement admits every listed account
        # (a list in aws:SourceAccount), one the organisation (aws:SourceOrgID), where a
        # function policy would take a statement per account.
        self.notes = central.queue(self, "Notes", queue_name=NOTES_QUEUE,
                                   visibility_timeout_s=6 * POSTER_TIMEOUT_S)
        for statement in notes_statements(central.stack, self.notes.queue_arn,
                                          central.member_accounts, central.org_id):
            self.notes.add_to_resource_policy(statement)
        from aws_cdk import aws_lambda_event_sources as sources

        # No more pollers than the poster's reservation (a throttled batch would count
        # as a receive towards the DLQ).
        self.poster.function.add_event_source(sources.SqsEventSource(
            self.notes, batch_size=10, report_batch_item_failures=True,
            max_concurrency=central.event_source_max_concurrency))


def notes_statements(stack: Any, queue_arn: str, member_accounts: Any,
                     org_id: str | None) -> list[iam.PolicyStatement]:
    """Who may send to the notes queue: SNS, for a ``dpc-*`` topic
    (``aws:SourceArn``) of a listed account (``aws:SourceAccount``, the list) or of an
    account of the organisation (``aws:SourceOrgID``). SNS supplies the source keys when
    it delivers to SQS (Amazon SNS Developer Guide, "Fanout to Amazon SQS queues"; IAM
    User Guide, "AWS global condition context keys": aws:SourceArn, aws:SourceAccount,
    aws:SourceOrgID). Two statements at most, whatever the number of accounts."""
    topics = f"arn:{stack.partition}:sns:{stack.region}:*:{TOPIC_PREFIX}*"
    common: dict[str, Any] = {"principals": [iam.ServicePrincipal("sns.amazonaws.com")],
              "actions": ["sqs:SendMessage"], "resources": [queue_arn]}
    out = []
    accounts = sorted(set(member_accounts))
    if accounts:
        out.append(iam.PolicyStatement(
            sid="PipelineTopicsOfListedAccounts", **common,
            conditions={"ArnLike": {"aws:SourceArn": topics},
                        "StringEquals": {"aws:SourceAccount": accounts}}))
    if org_id:
        out.append(iam.PolicyStatement(
            sid="PipelineTopicsOfTheOrganisation", **common,
            conditions={"ArnLike": {"aws:SourceArn": topics},
                        "StringEquals": {"aws:SourceOrgID": org_id}}))
    return out


def add_slack_service(scope: Any, central: Any) -> SlackService:
    """The hook's work: the Slack service under ``scope``."""
    return SlackService(scope, "Slack", central=central)
