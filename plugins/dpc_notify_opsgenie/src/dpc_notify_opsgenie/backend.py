"""OpsGenie alerts from the runtimes (opsgenie-sdk): one alert per failed pipeline and
logical date, closed when a later run of that pipeline and date succeeds.

De-duplication is OpsGenie's own: every alert carries an alias made of account, pipeline
and logical date, and OpsGenie turns a create with the alias of an open alert into a
repeat (its ``count`` grows) instead of a second alert. Success closes by alias
(``identifierType=alias``), so no state is kept here; closing when nothing is open is a
no-op on OpsGenie's side.

A retried create (the runtime stopped while it was under way, ``Notification.retry``) first
reads the open alert of the alias (Get Alert, ``identifierType=alias``): when its details
carry this notification's key (``dpc_key``), the first attempt reached OpsGenie and nothing
is sent again, so the alert's ``count`` does not grow either. When the read fails, the
create is sent: at worst the same alert's ``count`` grows by one, never a second alert.

Environment: ``OPSGENIE_API_KEY`` (required: the key of an OpsGenie *API* integration),
``DPC_OPSGENIE_API_URL`` (default ``https://api.opsgenie.com``; ``https://api.eu.opsgenie.com``
for EU accounts, a local server in tests), ``DPC_NOTIFY_TIMEOUT`` (seconds, default 10).

Addresses: an ``https://`` integration URL (``.../v1/json/amazonsns?apiKey=...``) is for the
AWS path, where SNS posts to it; this backend does not use those URLs (their key belongs
to the Amazon SNS integration, which the alert API does not accept), so on the SDK path the
key comes from ``OPSGENIE_API_KEY``. Any other address is an OpsGenie team name, added to
the alert as a responder.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from dpc_core.notify import ChannelNotConfigured
from dpc_core.types import Notification

DEFAULT_API_URL = "https://api.opsgenie.com"
#: OpsGenie limits: alias 512 characters, message 130.
_MAX_ALIAS = 512
_MAX_MESSAGE = 130


def alert_alias(note: Notification) -> str:
    """The de-duplication key of a pipeline and logical date: readable, hashed if too long."""
    alias = f"dpc/{note.account}/{note.pipeline}/{note.logical_date}"
    if len(alias) <= _MAX_ALIAS:
        return alias
    return "dpc/" + hashlib.sha256(alias.encode()).hexdigest()


def _responders(addresses: Sequence[str]) -> list[dict[str, str]]:
    return [{"type": "team", "name": a.strip()} for a in addresses
            if a.strip() and "://" not in a]


def alert_fields(note: Notification, addresses: Sequence[str]) -> dict[str, Any]:
    """The create-alert fields for a failed run."""
    message = f"{note.pipeline} ({note.account}) {note.status} for {note.logical_date}"
    if note.message:  # a window notice: the alert says why
        message = note.summary()
    if note.step:
        message += f" in step {note.step}"
    details = {"pipeline": note.pipeline, "account": note.account,
               "logical_date": note.logical_date, "run_id": note.run_id, "status": note.status}
    if note.step:
        details["failed_step"] = note.step
    if note.duration_s is not None:
        details["duration_s"] = f"{note.duration_s:.1f}"
    if note.key:
        details["dpc_key"] = note.key
    return {
        "message": message[:_MAX_MESSAGE],
        "alias": alert_alias(note),
        "description": "\n".join([note.summary(), *note.details()])[:15000],
        "responders": _responders(addresses),
        "tags": ["dpc", note.pipeline],
        "details": details,
        "entity": f"{note.account}/{note.pipeline}",
        "source": "dpc",
    }


class OpsGenieBackend:
    """Opens an alert for a failed run and closes it when a run of the same date succeeds."""

    #: The dispatcher hands this backend every final status, so a success closes the alert
    #: even for ``FAILURES_ONLY`` pipelines.
    receives_all_final_statuses = True

    def __init__(self, alert_api: Any, timeout: float = 10.0) -> None:
        self.alerts = alert_api
        self.timeout = timeout

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> OpsGenieBackend:
        """Build the opsgenie-sdk client from the environment (see the module docstring)."""
        import opsgenie_sdk

        key = env.get("OPSGENIE_API_KEY", "").strip()
        if not key:
            raise ChannelNotConfigured(
                "set OPSGENIE_API_KEY to the key of an OpsGenie API integration")
        conf = opsgenie_sdk.Configuration()
        conf.host = (env.get("DPC_OPSGENIE_API_URL") or DEFAULT_API_URL).rstrip("/")
        # Fresh dicts: Configuration() is a shallow copy of a process-wide default, so
        # mutating its dicts would share the key with every other client.
        conf.api_key = {"Authorization": key}
        conf.api_key_prefix = {"Authorization": "GenieKey"}
        # Bounded retries of 429/5xx and connection errors, so a run is never held long.
        conf.set_retry_policy({"retry_count": 3, "retry_delay": 5, "retry_max_delay": 15,
                               "back_off": 0.5})
        timeout = float(env.get("DPC_NOTIFY_TIMEOUT", "10"))
        return cls(opsgenie_sdk.AlertApi(opsgenie_sdk.ApiClient(configuration=conf)), timeout)

    def send(self, note: Notification, addresses: Sequence[str]) -> None:
        """Open (or repeat) the alert of a failed run; close it on a succeeded run.

        Only final statuses matter to OpsGenie; other notes are ignored.
        """
        from opsgenie_sdk import CloseAlertPayload

        if note.kind in ("PIPELINE_LATE", "PIPELINE_BLOCKED"):
            # A window notice opens the alert of the pipeline and date: the run that
            # succeeds for that date closes it, as it closes a failed run's alert.
            self._create(note, addresses)
            return
        if note.kind == "NOTICE_RESOLVED":
            self.alerts.close_alert(
                identifier=alert_alias(note), identifier_type="alias",
                close_alert_payload=CloseAlertPayload(source="dpc", note=note.message or ""),
                _request_timeout=self.timeout)
            return
        if note.kind != "PIPELINE_FINISHED":
            return
        if note.failed:
            self._create(note, addresses)
        elif note.status == "SUCCEEDED":
            self.alerts.close_alert(
                identifier=alert_alias(note), identifier_type="alias",
                close_alert_payload=CloseAlertPayload(
                    source="dpc", note=f"run {note.run_id} succeeded"),
                _request_timeout=self.timeout)

    def _create(self, note: Notification, addresses: Sequence[str]) -> None:
        from opsgenie_sdk import CreateAlertPayload

        if note.retry and note.key and self._already_created(note):
            return
        self.alerts.create_alert(CreateAlertPayload(**alert_fields(note, addresses)),
                                 _request_timeout=self.timeout)

    def _already_created(self, note: Notification) -> bool:
        """Whether the open alert of the note's alias came from this very note."""
        try:
            found = self.alerts.get_alert(identifier=alert_alias(note), identifier_type="alias",
                                          _request_timeout=self.timeout)
        except Exception:  # none open (404), or the read failed: create (at worst count+1)
            return False
        data = getattr(found, "data", None)
        details = getattr(data, "details", None) or {}
        return bool(details.get("dpc_key") == note.key)
