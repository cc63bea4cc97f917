"""The status event a run puts about itself, and its translation to the AWS shape.

Step Functions delivers its own status events *best effort*; docs/triggers.md asks for a
path with retries. The generated state machine's last state (in the success and in
the catch path) puts a ``dpc.pipeline`` event on the central bus. ``aws.*`` sources
cannot be put by callers, and ASL cannot turn ``$$.Execution.StartTime`` (ISO 8601)
into the epoch milliseconds of the AWS shape, so the event has its own shape and the
trigger manager converts it with :func:`to_status_event` before calling the engine
(duplicates of the AWS event are harmless by rule 1).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from dpc_central.conventions import (
    FORWARDED_STATUS_SOURCE,
    RUN_STATUS_DETAIL_TYPE,
    RUN_STATUS_SOURCE,
    SFN_DETAIL_TYPE,
    SFN_SOURCE,
)

SOURCE = RUN_STATUS_SOURCE
DETAIL_TYPE = RUN_STATUS_DETAIL_TYPE


def _epoch_ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def to_status_event(raw: Mapping[str, Any]) -> dict[str, Any] | None:
    """A ``dpc.pipeline`` run-status event as a Step Functions status event, or None
    when ``raw`` is not one. ``account`` stays the account EventBridge stamped on the
    event (the sender), so the engine's ownership check (rule 7) still applies."""
    if raw.get("source") != SOURCE or raw.get("detail-type") != DETAIL_TYPE:
        return None
    d = raw.get("detail")
    if not isinstance(d, Mapping):
        return None
    try:
        start_ms = _epoch_ms(str(d["startTime"]))
        stop = d.get("stopTime")
        stop_ms = _epoch_ms(str(stop)) if stop else None
    except (KeyError, ValueError):
        return None
    run_input = d.get("input")
    return {
        "version": "0",
        "id": raw.get("id", ""),
        "detail-type": SFN_DETAIL_TYPE,
        "source": SFN_SOURCE,
        "account": raw.get("account", ""),
        "time": raw.get("time", ""),
        "region": raw.get("region", ""),
        "resources": [d.get("executionArn")],
        "detail": {
            "executionArn": d.get("executionArn"),
            "stateMachineArn": d.get("stateMachineArn"),
            "name": d.get("name"),
            "status": d.get("status"),
            "startDate": start_ms,
            "stopDate": stop_ms,
            "input": run_input if isinstance(run_input, str) else json.dumps(run_input or {}),
            "redriveCount": d.get("redriveCount") or 0,
            "error": d.get("error"),
            "cause": d.get("cause"),
        },
    }


def from_forwarded(raw: Mapping[str, Any]) -> dict[str, Any] | None:
    """A status event as a team account's forwarder puts it (source ``dpc.states``, the
    AWS shape without the run's data) as the Step Functions event it stands for, or None
    when ``raw`` is not one. ``account`` stays the one EventBridge stamped (rule 7)."""
    if raw.get("source") != FORWARDED_STATUS_SOURCE or raw.get("detail-type") != \
            SFN_DETAIL_TYPE:
        return None
    return {**raw, "source": SFN_SOURCE}
