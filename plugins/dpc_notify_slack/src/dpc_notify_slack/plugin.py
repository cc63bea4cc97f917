"""``channel: SLACK``: one Slack thread per run (slack-sdk)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from dpc_core import hookimpl
from dpc_core.types import Notification, NotifierBackend, NotifierType

DPC_PLUGIN_API = 1


def validate_address(address: str) -> None:
    """A Slack channel name (``data-alerts`` or ``#data-alerts``) or id (``C0123ABC``)."""
    name = address.lstrip("#")
    if not name or " " in name or len(name) > 80:
        raise ValueError(f"{address!r} is not a Slack channel name; write e.g. data-alerts")


def preview(note: Notification, address: str) -> str:
    """One line of what the run's thread in ``address`` gets for ``note``."""
    from dpc_notify_slack.backend import channel_ref

    return f"Slack {channel_ref(address)}: {note.summary()}"


def _factory(env: Mapping[str, str]) -> NotifierBackend:
    from dpc_notify_slack.backend import SlackBackend

    return SlackBackend.from_env(env)


def _aws_subscriptions(scope, topic, addresses):  # type: ignore[no-untyped-def]
    from dpc_notify_slack.aws import subscribe

    subscribe(scope, topic, addresses)


@hookimpl
def dpc_notifiers() -> Iterator[NotifierType]:
    """The SLACK channel."""
    yield NotifierType(channel="SLACK", factory=_factory, validate_address=validate_address,
                       aws_subscriptions=_aws_subscriptions,
                       description="Slack message thread per run",
                       required_env=("SLACK_BOT_TOKEN",), secret_env=("SLACK_BOT_TOKEN",),
                       preview=preview)


@hookimpl
def dpc_central_constructs(scope, central):  # type: ignore[no-untyped-def]
    """The Slack service in the central account: poster Lambda, thread table, token."""
    from dpc_notify_slack.central import add_slack_service

    add_slack_service(scope, central)
