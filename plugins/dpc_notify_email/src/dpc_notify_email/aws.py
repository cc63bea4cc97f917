"""EMAIL on AWS: an SNS email subscription per address (each confirms by email)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def subscribe(scope: Any, topic: Any, addresses: Sequence[str]) -> None:
    """Subscribe every address to the pipeline's topic."""
    from aws_cdk import aws_sns_subscriptions as subs

    for address in addresses:
        topic.add_subscription(subs.EmailSubscription(address))
