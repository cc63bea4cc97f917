"""OPSGENIE on AWS: an HTTPS subscription to OpsGenie's Amazon SNS integration URL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def subscribe(scope: Any, topic: Any, addresses: Sequence[str]) -> None:
    """Subscribe each integration URL (``https://api.opsgenie.com/v1/json/amazonsns?...``).

    A team or responder name has no SNS form: OpsGenie's SNS integration is a URL.
    """
    from aws_cdk import aws_sns as sns
    from aws_cdk import aws_sns_subscriptions as subs

    for address in addresses:
        if not address.startswith("https://"):
            raise ValueError(f"OpsGenie address {address!r}: on AWS give the https URL of an "
                             "OpsGenie Amazon SNS integration")
        topic.add_subscription(subs.UrlSubscription(
            address, protocol=sns.SubscriptionProtocol.HTTPS, raw_message_delivery=False))
