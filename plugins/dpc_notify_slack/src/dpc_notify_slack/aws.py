"""SLACK on AWS: the pipeline's topic delivers to the central account's Slack poster.

The poster (``dpc-slack-poster`` in the central account) looks up the run's thread
and the pipeline's channels (registered with the pipeline) and posts under it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dpc_core.cdk_values import stack_info

#: CDK context key the pipeline stack sets to the central account's id (a token).
CTX_CENTRAL_ACCOUNT = "dpc:centralAccount"
#: The poster's function name in the central account (fixed, so a pipeline stack can
#: name it without a lookup).
POSTER_FUNCTION = "dpc-slack-poster"


def subscribe(scope: Any, topic: Any, addresses: Sequence[str]) -> None:
    """One Lambda subscription to the central Slack poster (channels travel with the
    pipeline's registration, not in the subscription)."""
    from aws_cdk import aws_sns as sns

    central = scope.node.try_get_context(CTX_CENTRAL_ACCOUNT)
    if not central:
        raise ValueError("the central account is unknown (context dpc:centralAccount): "
                         "Slack notifications are subscribed by dpc's pipeline stack")
    info = stack_info(scope)
    poster = f"arn:{info.partition}:lambda:{info.region}:{central}:function:{POSTER_FUNCTION}"
    sns.Subscription(scope, "SlackPoster", topic=topic, endpoint=poster,
                     protocol=sns.SubscriptionProtocol.LAMBDA)
