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


#: Window notices: a LATE or BLOCKED notice opens the pipeline and date's alert, its
#: resolution closes it (see backend.OpsGenieBackend.send).
_OPENS = ("PIPELINE_LATE", "PIPELINE_BLOCKED")


def alert(note: Notification) -> tuple[str, str] | None:
    """What ``note`` does to the OpsGenie alert of its pipeline and date: ``("open",
    alias)``, ``("close", alias)`` or None (OpsGenie is not sent it)."""
    from dpc_notify_opsgenie.backend import alert_alias

    if note.kind in _OPENS or (note.kind == "PIPELINE_FINISHED" and note.failed):
        return "open", alert_alias(note)
    if note.kind == "NOTICE_RESOLVED" or (note.kind == "PIPELINE_FINISHED"
                                          and note.status == "SUCCEEDED"):
        return "close", alert_alias(note)
    return None


def preview(note: Notification, address: str) -> str | None:
    """What OpsGenie gets for ``note``: an alert opened for a failed run or a LATE or
    BLOCKED notice, closed by a succeeded run or the notice's resolution; nothing for
    anything else."""
    from dpc_notify_opsgenie.backend import alert_fields

    what = alert(note)
    if what is None:
        return None
    action, alias = what
    if action == "open":
        return f"OpsGenie {address}: open alert {alias}: " \
               f"{alert_fields(note, [address])['message']}"
    return f"OpsGenie {address}: close alert {alias}"


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
                       preview=preview, alert=alert)
