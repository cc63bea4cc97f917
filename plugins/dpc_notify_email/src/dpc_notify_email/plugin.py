"""``channel: EMAIL``: SMTP locally, an SNS email subscription on AWS."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

from dpc_core import hookimpl
from dpc_core.types import NotifierBackend, NotifierType

DPC_PLUGIN_API = 1

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def validate_address(address: str) -> None:
    """An email address."""
    if not _EMAIL.match(address):
        raise ValueError(f"{address!r} is not an email address")


def _factory(env: Mapping[str, str]) -> NotifierBackend:
    from dpc_notify_email.backend import SmtpBackend

    return SmtpBackend.from_env(env)


def _aws_subscriptions(scope, topic, addresses):  # type: ignore[no-untyped-def]
    from dpc_notify_email.aws import subscribe

    subscribe(scope, topic, addresses)


@hookimpl
def dpc_notifiers() -> Iterator[NotifierType]:
    """The EMAIL channel."""
    yield NotifierType(channel="EMAIL", factory=_factory, validate_address=validate_address,
                       aws_subscriptions=_aws_subscriptions,
                       description="email (SMTP locally, SNS on AWS)")
