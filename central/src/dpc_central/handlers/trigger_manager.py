"""The trigger manager: status events in, one trigger event per decision out.

Invoked by the SQS FIFO queue in front of it (``{"Records": [...]}``, each ``body`` an
EventBridge event as the central bus's rules put it there), by the trigger-delivery retry
queue (bodies ``{"dpc": "trigger-delivery", ...}``), or directly with one EventBridge
event. Each event goes to the one trigger engine (:class:`dpc_core.engine.Engine`) over
the DynamoDB store; each decision becomes one ``dpc.trigger`` / ``dpc Pipeline Trigger``
event put **straight on the child account's pipeline bus**
(``arn:aws:events:<region>:<child>:event-bus/dpc-pipelines``; its resource policy, made
by ``dpc setup-user-account``, admits the central account). No account needs to be known
when the central stack is deployed.

What happens to an event:

* **decided**: trigger events put (:func:`_common.put_triggers`);
* **rejected** (docs/triggers.md rule 7): an event whose ``account`` does not own the state
  machine it names, or whose ``executionArn`` is not an execution of that state machine,
  is *spoofed* (the engine says so: ``Outcome.spoofed``): logged as a warning
  (``{"dpc": "spoofed", ...}``) and reported on the central bus as
  ``dpc.trigger-manager`` / ``dpc Event Rejected``; an event about a state machine no
  one registered (the account's other workflows) is logged at info level and dropped;
* **poison** (body not JSON, not an event, not a status event, a status event with bad
  fields: docs/triggers.md rule 8): logged with the reason and sent to the poison queue when
  ``DPC_POISON_DLQ_URL`` is set, then reported as processed: retrying cannot make it
  parse, so it must not block its message group;
* **transient failure** (DynamoDB errors, a trigger that could not even be queued for
  retry): the record and every later record of its message group (its account) are
  returned in ``batchItemFailures`` (the queue is FIFO: later records of a group must
  not overtake a failed one); records of other groups go on; SQS redelivers the failed
  ones, and the engine makes a redelivery harmless (rule 1);
* **an account not listed at setup**: EventBridge puts its events in the one group
  ``dpc-other-accounts`` (a rule target's group is static); each is moved, in order,
  to the group of its account on the same queue (``DPC_STATUS_QUEUE_URL``), so one
  account's failures do not hold the others.

Delivery is never silent. A decision is claimed in the store *before* its trigger is put,
and the claim is marked delivered only when the child's bus accepted the event
(PutEvents result with an ``EventId`` and no error). A refused trigger is put again a
few times in-process, then queued on the retry queue; this handler drains it with
exponential backoff (60 s doubling, ``ChangeMessageVisibility``) and after
``DPC_DELIVERY_ATTEMPTS`` attempts (default 5) sends it to the delivery DLQ, whose depth
alarm notifies the platform team, and takes the claim out of the sweep (the DLQ now
holds it; redriving the DLQ into the retry queue re-sends it). Claims left unmarked for
``DPC_REDELIVER_AFTER_S`` seconds (the handler died between claim and put) are re-sent
by a sweep (:func:`_common.redeliver_claims`): at the start of every status batch (at
most :data:`SWEEP_LIMIT` claims; a failing sweep never fails the batch) and by the
reconciler. Re-sending is harmless: the execution name is deterministic and the child's
starter treats an existing execution as success.

Environment:

* ``DPC_TABLE_REGISTRY``, ``DPC_TABLE_RUNS``, ``DPC_TABLE_WINDOWS``: the store's tables;
* ``DPC_CENTRAL_BUS``: name or ARN of the central bus (rejected-event reports);
* ``DPC_DELIVERY_RETRY_URL``, ``DPC_DELIVERY_DLQ_URL``: the trigger-delivery retry queue
  and its dead-letter queue; ``DPC_DELIVERY_ATTEMPTS`` (optional, default 5);
* ``DPC_POISON_DLQ_URL`` (optional): SQS queue for poison events (FIFO queues get a
  message group and a content hash as deduplication id); the central stack sets it to
  the status queue's dead-letter queue; it also holds undelivered triggers when no
  retry queue is configured;
* ``DPC_REDELIVER_AFTER_S`` (optional): age of an unacknowledged claim before the sweep
  re-sends its trigger.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dpc_central.conventions import (
    ENV_CENTRAL_BUS,
    ENV_DELIVERY_DLQ_URL,
    ENV_POISON_DLQ_URL,
    ENV_STATUS_QUEUE_URL,
    OTHER_ACCOUNTS_GROUP,
    PIPELINE_BUS_NAME,
    TRIGGER_SOURCE,
)
from dpc_central.handlers import _common as common

#: How rejected (spoofed) events are reported on the central bus.
REPORT_SOURCE = "dpc.trigger-manager"
REJECTED_DETAIL_TYPE = "dpc Event Rejected"
#: At most this many unacknowledged claims are re-sent per batch (the rest wait for the
#: next batch or the reconciler), so a backlog cannot eat a batch's time budget.
SWEEP_LIMIT = 10
_ACCOUNT = re.compile(r"\d{12}")


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
        if records and all(_delivery_body(r) is not None for r in records):
            return _handle_retries(records)
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


def _group(record: Any) -> str:
    """The record's FIFO message group ("" when it has none)."""
    attributes = record.get("attributes") if isinstance(record, Mapping) else None
    return str((attributes or {}).get("MessageGroupId") or "")


def _handle_batch(records: list[Any]) -> dict[str, Any]:
    _sweep()
    failures: list[dict[str, str]] = []
    failed_groups: set[str] = set()
    for record in records:
        message_id = str(record.get("messageId", "")) if isinstance(record, Mapping) else ""
        group = _group(record)
        if group in failed_groups:
            # FIFO: once one record of a group failed, the later ones of that group wait
            # for its redelivery; other groups (other accounts) go on.
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
            if not _regroup(record, group, raw, body, message_id):
                process(raw)
        except Poison as exc:
            try:
                _poison(str(exc), body if isinstance(body, str) else json.dumps(record,
                        default=str), message_id=message_id)
            except Exception as dlq_exc:  # the DLQ itself failed: let SQS try again later
                common.emit(logging.ERROR, "poison-dlq-failed", messageId=message_id,
                            error=f"{type(dlq_exc).__name__}: {dlq_exc}")
                failures.append({"itemIdentifier": message_id})
                failed_groups.add(group)
        except Exception as exc:
            # Transient (throttling, a DynamoDB or EventBridge outage): SQS redelivers.
            common.emit(logging.WARNING, "retry", messageId=message_id,
                        error=f"{type(exc).__name__}: {exc}")
            failures.append({"itemIdentifier": message_id})
            failed_groups.add(group)
    return {"batchItemFailures": failures}


def _regroup(record: Mapping[str, Any], group: str, raw: Any, body: str,
             message_id: str) -> bool:
    """Move an event of an account not listed at setup (message group
    :data:`OTHER_ACCOUNTS_GROUP`, EventBridge's static group for them) to the group of
    its account on the same queue; True when moved (the record is then done with).

    The move keeps the order (the old group is read in order, each account's events
    enter its group in that order) and is idempotent: the deduplication id is derived
    from the record's message id, which SQS keeps across redeliveries, so a redelivered
    record is not moved twice within SQS's 5-minute deduplication interval."""
    url = os.environ.get(ENV_STATUS_QUEUE_URL, "").strip()
    if group != OTHER_ACCOUNTS_GROUP or not url or not message_id:
        return False
    source = str(record.get("eventSourceARN") or "").rsplit(":", 1)[-1]
    if source != url.rstrip("/").rsplit("/", 1)[-1]:
        return False  # only the status queue's own records
    account = raw.get("account") if isinstance(raw, Mapping) else None
    if not isinstance(account, str) or not _ACCOUNT.fullmatch(account):
        raise Poison("a status event without a 12-digit account")
    common.client("sqs").send_message(
        QueueUrl=url, MessageBody=body, MessageGroupId=account,
        MessageDeduplicationId=f"regroup-{message_id}"[:128])
    common.emit(logging.INFO, "regrouped", messageId=message_id, account=account)
    return True


def process(raw: Any) -> Result:
    """Run one decoded event through the engine and put its trigger events.

    Raises :class:`Poison` for inputs that can never be processed, anything else for
    transient failures.
    """
    if not common.is_eventbridge_event(raw):
        raise Poison("not an EventBridge event (needs source, detail-type and detail)")
    outcome = common.engine().handle(raw)
    if outcome.skipped or outcome.bad_input:
        # Not a status event, or one whose fields break the contract (docs/triggers.md rule 8):
        # retrying cannot fix it, the poison queue keeps it for the operator.
        raise Poison(outcome.skipped or outcome.rejected or "bad input")
    if outcome.rejected:
        # The engine says whether the sender spoke for a state machine or a run it does
        # not own (rule 7), so the rule lives in one place.
        spoofed = outcome.spoofed
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
        # Raises PutFailed only when a refused trigger could not even be queued for
        # retry: a transient failure (the claim stays for the sweep).
        common.put_triggers(outcome.decisions)
    return Result(decisions=len(outcome.decisions))


def _detail(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    detail = raw.get("detail")
    return detail if isinstance(detail, Mapping) else {}


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


def _send_dlq(message: dict[str, Any], group: str) -> bool:
    """Send ``message`` to the poison queue; False when none is configured."""
    url = os.environ.get(ENV_POISON_DLQ_URL, "").strip()
    if not url:
        return False
    common.send_message(url, message, group=group)
    return True


def _poison(reason: str, body: str, message_id: str | None) -> None:
    sent = _send_dlq({"reason": reason, "body": body}, "poison")
    common.emit(logging.ERROR, "poison", reason=reason, messageId=message_id,
                sentToDlq=sent, body=body[:2000])


# -- the trigger-delivery retry queue ------------------------------------------------------

def _delivery_body(record: Any) -> dict[str, Any] | None:
    """The retry-queue message of an SQS record, or None (a status-queue record).

    Only records of the retry queue itself count (its name is that of
    ``DPC_DELIVERY_RETRY_URL``, when set): a body that merely looks like one must not
    make this function put events where a member account says."""
    body = record.get("body") if isinstance(record, Mapping) else None
    if not isinstance(body, str) or common.DELIVERY_MESSAGE not in body:
        return None
    retry_name = _retry_queue_url().rsplit("/", 1)[-1]
    source = str(record.get("eventSourceARN") or "").rsplit(":", 1)[-1]
    if retry_name and source != retry_name:
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if isinstance(data, dict) and data.get("dpc") == common.DELIVERY_MESSAGE \
            and isinstance(data.get("entry"), dict) and isinstance(data.get("claim"), dict):
        return data
    return None


def _handle_retries(records: list[Any]) -> dict[str, Any]:
    """Re-put queued triggers; a refused one waits longer each time (the message's
    visibility), and after the last attempt goes to the delivery DLQ."""
    failures: list[dict[str, str]] = []
    limit = common.delivery_attempts()
    for record in records:
        message_id = str(record.get("messageId", ""))
        data = _delivery_body(record) or {}
        attempt = int((record.get("attributes") or {}).get("ApproximateReceiveCount") or 1)
        try:
            if not _retry_one(data, attempt, limit):
                failures.append({"itemIdentifier": message_id})
                _back_off(record, attempt)
        except Exception as exc:  # DynamoDB or SQS trouble: SQS gives the message again
            common.emit(logging.WARNING, "retry", messageId=message_id,
                        error=f"{type(exc).__name__}: {exc}")
            failures.append({"itemIdentifier": message_id})
    return {"batchItemFailures": failures}


def _retry_one(data: dict[str, Any], attempt: int, limit: int) -> bool:
    """One delivery attempt; True when the message is done with (delivered, settled by
    another copy, or dead-lettered)."""
    claim, entry = data["claim"], data["entry"]
    child, window, generation = str(claim["child"]), str(claim["window"]), \
        int(claim["generation"])
    if entry.get("Source") != TRIGGER_SOURCE or not str(entry.get("EventBusName", "")) \
            .endswith(f":{child.split('/')[0]}:event-bus/{PIPELINE_BUS_NAME}"):
        # Only ever a trigger, only ever to the child's own bus.
        common.emit(logging.ERROR, "retry-refused", reason="not a trigger for the child's "
                    "pipeline bus", child=child, bus=entry.get("EventBusName"))
        return True
    if not _still_undelivered(child, window, generation):
        common.emit(logging.INFO, "retry-settled", child=child, window=window,
                    generation=generation)
        return True  # another copy (or the sweep) delivered it, or it was dead-lettered
    ((event_id, error),) = common.put_once([entry])
    if event_id is not None:
        common.emit(logging.INFO, "trigger", child=child, window=window,
                    executionName=claim.get("executionName"), eventId=event_id,
                    bus=entry.get("EventBusName"), attempt=attempt, redelivery=True)
        common.acknowledge(child, window, generation)
        return True
    if attempt < limit:
        common.emit(logging.WARNING, "trigger-retry-failed", child=child, window=window,
                    attempt=attempt, error=error, bus=entry.get("EventBusName"))
        return False
    dlq = common.require_env(ENV_DELIVERY_DLQ_URL)
    common.send_message(dlq, {**data, "error": error, "attempts": attempt})
    # The DLQ holds it now (alarmed): the sweep must not send it round again.
    common.acknowledge(child, window, generation)
    common.emit(logging.ERROR, "trigger-dead-lettered", child=child, window=window,
                executionName=claim.get("executionName"), attempts=attempt, error=error,
                bus=entry.get("EventBusName"))
    return True


def _still_undelivered(child: str, window: str, generation: int) -> bool:
    return any(c.child == child and c.window == window and c.generation == generation
               for c in common.store().undelivered_claims(0))


def _retry_queue_url() -> str:
    from dpc_central.conventions import ENV_DELIVERY_RETRY_URL

    return os.environ.get(ENV_DELIVERY_RETRY_URL, "").strip().rstrip("/")


def _back_off(record: Mapping[str, Any], attempt: int) -> None:
    """Make the failed message visible again only after :func:`common.retry_delay_s`."""
    arn = str(record.get("eventSourceARN") or "")
    handle_ = record.get("receiptHandle")
    parts = arn.split(":")
    if len(parts) < 6 or not handle_:
        return
    sqs = common.client("sqs")
    try:
        url = _retry_queue_url() or sqs.get_queue_url(
            QueueName=parts[5], QueueOwnerAWSAccountId=parts[4])["QueueUrl"]
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=handle_,
                                      VisibilityTimeout=common.retry_delay_s(attempt))
    except Exception as exc:  # the queue's own visibility timeout applies instead
        common.emit(logging.WARNING, "backoff-failed", error=f"{type(exc).__name__}: {exc}")
