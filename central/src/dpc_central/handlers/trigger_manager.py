"""The trigger manager: status events in, one trigger event per decision out.

Invoked by the SQS FIFO queue in front of it (``{"Records": [...]}``, each ``body`` an
EventBridge event as the central bus's rules put it there) or directly with one
EventBridge event. Each event goes to the one trigger engine
(:class:`dpc_core.engine.Engine`) over the DynamoDB store; each decision becomes one
``dpc.trigger`` / ``dpc Pipeline Trigger`` event on the central bus whose
``detail.account`` is the child's account, so that the bus's delivery rule for that
account (and no other) carries it to the child's pipeline bus.

What happens to an event:

* **decided**: trigger events put (retried in-process when PutEvents refuses entries);
* **rejected** (TRIGGERS.md rule 7): an event whose ``account`` does not own the state
  machine it names is *spoofed*: logged as a warning (``{"dpc": "spoofed", ...}``) and
  reported on the central bus as ``dpc.trigger-manager`` / ``dpc Event Rejected``; an
  event about a state machine no one registered (the account's other workflows) is
  logged at info level and dropped;
* **poison** (body not JSON, not an event, not a status event): logged with the reason
  and sent to the poison queue when ``DPC_POISON_DLQ_URL`` is set, then reported as
  processed: retrying cannot make it parse, so it must not block its message group;
* **transient failure** (DynamoDB or EventBridge errors): the record and every later
  record of the batch are returned in ``batchItemFailures`` (the queue is FIFO: later
  records must not overtake a failed one); SQS redelivers them, and the engine makes a
  redelivery harmless (TRIGGERS.md rule 1).

A decision is claimed in the store *before* its trigger event is put, so a trigger
whose PutEvents keeps failing would not be decided again by a redelivery. Each claim is
therefore marked delivered only after its PutEvents succeeded
(:meth:`DynamoStore.mark_delivered`), and claims left unmarked for
``DPC_REDELIVER_AFTER_S`` seconds (default 300) are re-sent by a sweep
(:func:`_common.redeliver_claims`): at the start of every SQS batch (at most
:data:`SWEEP_LIMIT` claims, a failure of the sweep never fails the batch) and by the
reconciler on its schedule. Re-sending is harmless: the execution name is deterministic
and the child's starter treats an existing execution as success. A PutEvents failure is
also logged as an error with the full entry (``{"dpc": "undelivered-trigger", ...}``)
and sent to the poison queue when configured, for the operator's eyes.

Environment:

* ``DPC_TABLE_REGISTRY``, ``DPC_TABLE_RUNS``, ``DPC_TABLE_WINDOWS``: the store's tables;
* ``DPC_CENTRAL_BUS``: name or ARN of the central bus (trigger events and reports);
* ``DPC_POISON_DLQ_URL`` (optional): SQS queue for poison events and undelivered
  triggers (FIFO queues get a message group and a content hash as deduplication id);
  the central stack sets it to the status queue's dead-letter queue;
* ``DPC_REDELIVER_AFTER_S`` (optional): age of an unacknowledged claim before the sweep
  re-sends its trigger.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dpc_central.conventions import ENV_CENTRAL_BUS, ENV_POISON_DLQ_URL
from dpc_central.handlers import _common as common

#: How rejected (spoofed) events are reported on the central bus.
REPORT_SOURCE = "dpc.trigger-manager"
REJECTED_DETAIL_TYPE = "dpc Event Rejected"
#: At most this many unacknowledged claims are re-sent per batch (the rest wait for the
#: next batch or the reconciler), so a backlog cannot eat a batch's time budget.
SWEEP_LIMIT = 10


class Poison(Exception):
    """An input that can never be processed; the message says why."""


@dataclass
class Result:
    """What processing one event did (returned for direct invocations, logged always)."""

    decisions: int = 0
    rejected: str | None = None
    spoofed: bool = False
    poison: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"decisions": self.decisions, "rejected": self.rejected,
                "spoofed": self.spoofed, "poison": self.poison}


def handle(event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
    """Lambda entry point (see the module docstring for event shapes and outcomes)."""
    records = event.get("Records") if isinstance(event, Mapping) else None
    if isinstance(records, list):
        return _handle_batch(records)
    # A direct invocation: one event. Transient errors raise (Lambda retries async calls).
    try:
        return process(event).as_dict()
    except Poison as exc:
        _poison(str(exc), json.dumps(event, default=str), message_id=None)
        return Result(poison=str(exc)).as_dict()


def _sweep() -> None:
    """Re-send a few claims whose trigger events were never acknowledged (best effort)."""
    try:
        common.redeliver_claims(limit=SWEEP_LIMIT)
    except Exception as exc:  # the batch's own events matter more; the reconciler retries
        common.emit(logging.WARNING, "sweep-failed", error=f"{type(exc).__name__}: {exc}")


def _handle_batch(records: list[Any]) -> dict[str, Any]:
    _sweep()
    failures: list[dict[str, str]] = []
    for record in records:
        message_id = str(record.get("messageId", "")) if isinstance(record, Mapping) else ""
        if failures:
            # FIFO: once one record failed, the later ones wait for its redelivery.
            failures.append({"itemIdentifier": message_id})
            continue
        body = record.get("body") if isinstance(record, Mapping) else None
        try:
            if not isinstance(body, str):
                raise Poison("SQS record without a string body")
            try:
                raw = json.loads(body)
            except ValueError as exc:
                raise Poison(f"body is not JSON: {exc}") from None
            process(raw)
        except Poison as exc:
            try:
                _poison(str(exc), body if isinstance(body, str) else json.dumps(record,
                        default=str), message_id=message_id)
            except Exception as dlq_exc:  # the DLQ itself failed: let SQS try again later
                common.emit(logging.ERROR, "poison-dlq-failed", messageId=message_id,
                            error=f"{type(dlq_exc).__name__}: {dlq_exc}")
                failures.append({"itemIdentifier": message_id})
        except Exception as exc:
            # Transient (throttling, a DynamoDB or EventBridge outage): SQS redelivers.
            common.emit(logging.WARNING, "retry", messageId=message_id,
                        error=f"{type(exc).__name__}: {exc}")
            failures.append({"itemIdentifier": message_id})
    return {"batchItemFailures": failures}


def process(raw: Any) -> Result:
    """Run one decoded event through the engine and put its trigger events.

    Raises :class:`Poison` for inputs that can never be processed, anything else for
    transient failures.
    """
    if not common.is_eventbridge_event(raw):
        raise Poison("not an EventBridge event (needs source, detail-type and detail)")
    outcome = common.engine().handle(raw)
    if outcome.skipped:
        raise Poison(outcome.skipped)
    if outcome.rejected:
        spoofed = _is_spoofed(raw)
        result = Result(rejected=outcome.rejected, spoofed=spoofed)
        if spoofed:
            common.emit(logging.WARNING, "spoofed", reason=outcome.rejected,
                        account=raw.get("account"), eventId=raw.get("id"),
                        stateMachineArn=_detail(raw).get("stateMachineArn"))
            _report_rejected(raw, outcome.rejected)
        else:
            common.emit(logging.INFO, "ignored", reason=outcome.rejected,
                        account=raw.get("account"), eventId=raw.get("id"))
        return result
    if outcome.decisions:
        try:
            common.put_triggers(outcome.decisions)
        except common.PutFailed as exc:
            _undelivered(outcome.decisions, str(exc))
    return Result(decisions=len(outcome.decisions))


def _detail(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    detail = raw.get("detail")
    return detail if isinstance(detail, Mapping) else {}


def _is_spoofed(raw: Mapping[str, Any]) -> bool:
    """True when the event's account differs from the account of the state machine it
    names (as opposed to a state machine that simply is not a registered pipeline)."""
    arn = str(_detail(raw).get("stateMachineArn") or "")
    parts = arn.split(":")
    return len(parts) > 4 and parts[4] != str(raw.get("account", ""))


def _report_rejected(raw: Mapping[str, Any], reason: str) -> None:
    """Put a ``dpc Event Rejected`` event on the central bus (best effort: the log line
    is the record; the event lets the platform route it to an alarm)."""
    bus = os.environ.get(ENV_CENTRAL_BUS)
    if not bus:
        return
    detail = {"reason": reason, "account": raw.get("account"), "eventId": raw.get("id"),
              "source": raw.get("source"), "detailType": raw.get("detail-type"),
              "stateMachineArn": _detail(raw).get("stateMachineArn"),
              "executionArn": _detail(raw).get("executionArn")}
    try:
        common.put_entries([{"Source": REPORT_SOURCE, "DetailType": REJECTED_DETAIL_TYPE,
                             "Detail": json.dumps(detail, default=str), "EventBusName": bus}],
                           attempts=2)
    except Exception as exc:
        common.emit(logging.ERROR, "report-failed", error=f"{type(exc).__name__}: {exc}")


def _send_dlq(body: str, group: str) -> bool:
    """Send ``body`` to the poison queue; False when none is configured."""
    url = os.environ.get(ENV_POISON_DLQ_URL, "").strip()
    if not url:
        return False
    kwargs: dict[str, Any] = {"QueueUrl": url, "MessageBody": body}
    if url.endswith(".fifo"):
        kwargs["MessageGroupId"] = group
        kwargs["MessageDeduplicationId"] = hashlib.sha256(body.encode()).hexdigest()
    common.client("sqs").send_message(**kwargs)
    return True


def _poison(reason: str, body: str, message_id: str | None) -> None:
    sent = _send_dlq(json.dumps({"reason": reason, "body": body}), "poison")
    common.emit(logging.ERROR, "poison", reason=reason, messageId=message_id,
                sentToDlq=sent, body=body[:2000])


def _undelivered(decisions: list[Any], error: str) -> None:
    bus = os.environ.get(ENV_CENTRAL_BUS, "")
    entries = [common.trigger_entry(d, bus) for d in decisions]
    sent = False
    try:
        sent = _send_dlq(json.dumps({"reason": error, "undeliveredTriggers": entries}),
                         "undelivered-triggers")
    except Exception as exc:
        error += f"; poison queue failed too: {type(exc).__name__}: {exc}"
    common.emit(logging.ERROR, "undelivered-trigger", error=error, sentToDlq=sent,
                entries=entries)
