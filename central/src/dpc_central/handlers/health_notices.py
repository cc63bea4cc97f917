"""LATE and BLOCKED notices in the central account, from the reconciler's pass.

What is late or blocked is decided by :mod:`dpc_core.health` over the engine's own
DynamoDB data (registry, run log, windows): the same functions and the same words as on
the local runtime. This module adds the central account's side:

- a ledger of notices in the registry table (``pk = N#<account/name>``,
  ``sk = <window>#<LATE|BLOCKED>``), written with a conditional put, so each notice is
  published once per window however many passes (or concurrent reconcilers) see it;
- publication through the execution tracker's path (:func:`execution_tracker.publish`:
  the pipeline's own SNS topic, only ever of its own account, the note as a message
  attribute for the Slack poster), to the targets the pipeline registered;
- resolution: an open notice whose window has a succeeded run is marked resolved and a
  RECOVERED note goes the same way (the Slack poster rewrites the notice's thread root,
  OpsGenie closes the alert of the pipeline and date).

Each pass looks at failed runs started in the reconciler's look-back window, at the
current window of every pipeline with a ``deadline``, and at every open notice.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from dpc_central.handlers import _common as common

if TYPE_CHECKING:
    from dpc_core.types import EventKind

NOTICE_PREFIX = "N#"
_KINDS = {"LATE": ("PIPELINE_LATE", "LATE", "late"),
          "BLOCKED": ("PIPELINE_BLOCKED", "BLOCKED", "blocked")}


def _note(spec: Any, window: str, kind: EventKind, status: str, notice_id: str, text: str) -> Any:
    from dpc_core.types import Notification

    return Notification(kind=kind, pipeline=spec.name, account=spec.account,
                        logical_date=window, run_id=notice_id, status=status, message=text)


def _publish(spec: Any, note: Any, region: str) -> bool:
    """Publish ``note`` to the pipeline's topic when it registered alert targets."""
    from dpc_central.handlers import execution_tracker as tracker

    notifications = spec.info.get("notifications") or {}
    if not notifications.get("targets"):
        return False
    own = tracker.topic_arn(region, spec.account, spec.name)
    topic = spec.info.get("topicArn") or own
    if not tracker._in_account(topic, spec.account):
        topic = own
    tracker.publish(topic, note)
    return True


def _open(store: Any, key: str, window: str, kind: str, text: str, now_ms: int) -> bool:
    """Record a notice unless one of that kind is already recorded for the window."""
    try:
        store.client.put_item(
            TableName=store.tables.registry,
            Item={"pk": {"S": NOTICE_PREFIX + key}, "sk": {"S": f"{window}#{kind}"},
                  "text": {"S": text[:4000]}, "created": {"N": str(now_ms)}},
            ConditionExpression="attribute_not_exists(pk)")
    except Exception as exc:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
        if code == "ConditionalCheckFailedException":
            return False
        raise
    return True


def _send(store: Any, spec: Any, note: Any, region: str, key: str, window: str, kind: str,
          undo: str) -> bool:
    """Publish a recorded notice (or its resolution); when publishing fails, undo the
    record so the next pass tries again (a notice is never recorded yet unsent)."""
    try:
        _publish(spec, note, region)
        return True
    except Exception as exc:
        common.emit(logging.ERROR, "notice-publish-failed", pipeline=key, window=window,
                    kind=kind, error=f"{type(exc).__name__}: {exc}")
        item_key = {"pk": {"S": NOTICE_PREFIX + key}, "sk": {"S": f"{window}#{kind}"}}
        if undo == "open":
            store.client.delete_item(TableName=store.tables.registry, Key=item_key)
        else:
            store.client.update_item(TableName=store.tables.registry, Key=item_key,
                                     UpdateExpression="REMOVE resolved")
        return False


def _open_notices(store: Any) -> list[tuple[str, str, str]]:
    """Every notice not yet resolved: (pipeline key, window, kind)."""
    out = []
    kwargs: dict[str, Any] = {
        "TableName": store.tables.registry,
        "FilterExpression": "begins_with(pk, :n) AND attribute_not_exists(resolved)",
        "ExpressionAttributeValues": {":n": {"S": NOTICE_PREFIX}}}
    while True:
        page = store.client.scan(**kwargs)
        for item in page.get("Items", []):
            window, _, kind = item["sk"]["S"].rpartition("#")
            out.append((item["pk"]["S"][len(NOTICE_PREFIX):], window, kind))
        if "LastEvaluatedKey" not in page:
            return out
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _resolve(store: Any, key: str, window: str, kind: str, now_ms: int) -> bool:
    try:
        store.client.update_item(
            TableName=store.tables.registry,
            Key={"pk": {"S": NOTICE_PREFIX + key}, "sk": {"S": f"{window}#{kind}"}},
            UpdateExpression="SET resolved = :t",
            ConditionExpression="attribute_exists(pk) AND attribute_not_exists(resolved)",
            ExpressionAttributeValues={":t": {"N": str(now_ms)}})
    except Exception as exc:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
        if code == "ConditionalCheckFailedException":
            return False  # another pass resolved it
        raise
    return True


def notice_pass(store: Any, now_ms: int, since_ms: int, region: str) -> dict[str, int]:
    """One pass: open BLOCKED notices for recent failures, LATE notices for missed
    deadlines, resolve notices whose window succeeded. Counts of each."""
    from dpc_core.health import (
        FAILED,
        blocked_downstream,
        current_window,
        due_ms,
        late_text,
        waiting_on,
        who,
        window_succeeded,
    )

    counts = {"blocked": 0, "late": 0, "resolved": 0, "failed": 0}
    specs = {s.key: s for s in store.pipelines()}
    parents = {p for s in specs.values() for p in s.parents}
    for key in sorted(parents & set(specs)):
        for run in store.runs_of(key, since_ms=since_ms):
            if run.status not in FAILED:
                continue
            for b in blocked_downstream(store, run):
                if _open(store, b.key, b.window, "BLOCKED", b.text(), now_ms):
                    note = _note(b.child, b.window, "PIPELINE_BLOCKED", "BLOCKED",
                                 f"blocked:{b.window}", b.text())
                    sent = _send(store, b.child, note, region, b.key, b.window, "BLOCKED",
                                 "open")
                    counts["blocked" if sent else "failed"] += 1
    for spec in specs.values():
        if not spec.info.get("deadline"):
            continue
        window = current_window(spec, now_ms)
        due = due_ms(spec, window)
        if due is None or due > now_ms or window_succeeded(store, spec, window):
            continue
        text = late_text(spec, window, waiting_on(store, spec, window))
        if _open(store, spec.key, window, "LATE", text, now_ms):
            note = _note(spec, window, "PIPELINE_LATE", "LATE", f"late:{window}", text)
            sent = _send(store, spec, note, region, spec.key, window, "LATE", "open")
            counts["late" if sent else "failed"] += 1
    for key, window, kind in _open_notices(store):
        spec = specs.get(key)
        if spec is None or not window_succeeded(store, spec, window):
            continue
        if _resolve(store, key, window, kind, now_ms):
            text = f"{who(spec)} succeeded for {window}; the {kind} notice is resolved"
            note = _note(spec, window, "NOTICE_RESOLVED", "RECOVERED",
                         f"{_KINDS[kind][2]}:{window}", text)
            sent = _send(store, spec, note, region, key, window, kind, "resolve")
            counts["resolved" if sent else "failed"] += 1
    common.emit(logging.INFO, "notices", **counts)
    return counts
