"""SLACK on AWS: the pipeline's topic delivers to the central account's Slack queue,
which the Slack poster consumes.

The topic subscribes the queue ``dpc-slack-notes`` of the central account (SNS → SQS
across accounts; the poster confirms the subscription, "Sending Amazon SNS messages to
an Amazon SQS queue in a different account"). The poster (``dpc-slack-poster``) looks
up the run's thread and the pipeline's channels (registered with the pipeline) and posts
under it. Why a queue and not the function: a Lambda permission carries one
``SourceArn``/``SourceAccount``, so the function's policy grows a statement per account
(20 KB at most); the queue's policy admits every account in one statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dpc_core.cdk_values import stack_info

#: CDK context key the pipeline stack sets to the central account's id (a token).
CTX_CENTRAL_ACCOUNT = "dpc:centralAccount"
#: The poster's function name in the central account.
POSTER_FUNCTION = "dpc-slack-poster"
#: The queue in front of it (fixed, so a pipeline stack can name it without a lookup).
NOTES_QUEUE = "dpc-slack-notes"


def subscribe(scope: Any, topic: Any, addresses: Sequence[str]) -> None:
    """One SQS subscription to the central Slack queue (channels travel with the
    pipeline's registration, not in the subscription)."""
    from aws_cdk import aws_sns as sns

    central = scope.node.try_get_context(CTX_CENTRAL_ACCOUNT)
    if not central:
        raise ValueError("the central account is unknown (context dpc:centralAccount): "
                         "Slack notifications are subscribed by dpc's pipeline stack")
    info = stack_info(scope)
    queue = f"arn:{info.partition}:sqs:{info.region}:{central}:{NOTES_QUEUE}"
    sns.Subscription(scope, "SlackPoster", topic=topic, endpoint=queue,
                     protocol=sns.SubscriptionProtocol.SQS)
