"""SLACK on AWS: the pipeline's topic delivers to the central account's Slack poster.

The poster (``dpc-slack-poster`` in the central account) looks up the run's thread
and the pipeline's channels (registered with the pipeline) and posts under it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

#: CDK context key the pipeline stack sets to the poster's ARN.
CTX_SLACK_POSTER_ARN = "dpc:slackPosterArn"


def subscribe(scope: Any, topic: Any, addresses: Sequence[str]) -> None:
    """One Lambda subscription to the central Slack poster (channels travel with the
    pipeline's registration, not in the subscription)."""
    from aws_cdk import aws_sns as sns

    poster = scope.node.try_get_context(CTX_SLACK_POSTER_ARN)
    if not poster:
        raise ValueError("the Slack poster's ARN is unknown (context dpc:slackPosterArn)")
    sns.Subscription(scope, "SlackPoster", topic=topic, endpoint=poster,
                     protocol=sns.SubscriptionProtocol.LAMBDA)
