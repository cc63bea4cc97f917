"""``channel: OPSGENIE``: one alert per failed pipeline and logical date (opsgenie-sdk)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from dpc_core import hookimpl
from dpc_core.types import NotifierBackend, NotifierType

DPC_PLUGIN_API = 1


def validate_address(address: str) -> None:
    """An OpsGenie integration URL (https://...) or a team/responder name."""
    if not address.strip():
        raise ValueError("empty OpsGenie address")
    if "://" in address and not address.startswith("https://"):
        raise ValueError(f"{address!r}: OpsGenie integration URLs must use https")


def _factory(env: Mapping[str, str]) -> NotifierBackend:
    from dpc_notify_opsgenie.backend import OpsGenieBackend

    return OpsGenieBackend.from_env(env)


def _aws_subscriptions(scope, topic, addresses):  # type: ignore[no-untyped-def]
    from dpc_notify_opsgenie.aws import subscribe

    subscribe(scope, topic, addresses)


@hookimpl
def dpc_notifiers() -> Iterator[NotifierType]:
    """The OPSGENIE channel."""
    yield NotifierType(channel="OPSGENIE", factory=_factory, validate_address=validate_address,
                       aws_subscriptions=_aws_subscriptions,
                       description="OpsGenie alert per failed run, closed on success")
