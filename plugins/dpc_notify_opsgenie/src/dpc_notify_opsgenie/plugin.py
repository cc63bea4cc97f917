"""``channel: OPSGENIE``: one alert per failed pipeline and logical date (opsgenie-sdk)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from dpc_core import hookimpl
from dpc_core.types import Notification, NotifierBackend, NotifierType

DPC_PLUGIN_API = 1


def validate_address(address: str) -> None:
    """An OpsGenie integration URL (https://...) or a team/responder name."""
    if not address.strip():
        raise ValueError("empty OpsGenie address")
    if "://" in address and not address.startswith("https://"):
        raise ValueError(f"{address!r}: OpsGenie integration URLs must use https")


def preview(note: Notification, address: str) -> str | None:
    """What OpsGenie gets for ``note``: an alert opened for a failed run, closed for a
    succeeded one; nothing for anything else."""
    if note.kind != "PIPELINE_FINISHED":
        return None
    from dpc_notify_opsgenie.backend import alert_alias, alert_fields

    if note.failed:
        return f"OpsGenie {address}: open alert {alert_alias(note)}: " \
               f"{alert_fields(note, [address])['message']}"
    if note.status == "SUCCEEDED":
        return f"OpsGenie {address}: close alert {alert_alias(note)}"
    return None


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
                       description="OpsGenie alert per failed run, closed on success",
                       required_env=("OPSGENIE_API_KEY",), secret_env=("OPSGENIE_API_KEY",),
                       preview=preview)
