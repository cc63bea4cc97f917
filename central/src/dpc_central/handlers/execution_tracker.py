"""The execution tracker: run and step events → the pipeline's SNS topic.

Invoked by the central bus's rule with one EventBridge event (or an SQS batch of them):

* ``aws.states`` / ``Step Functions Execution Status Change``: ``RUNNING`` → a
  ``PIPELINE_STARTED`` note; ``TIMED_OUT`` and ``ABORTED`` → ``PIPELINE_FINISHED`` (a run
  cannot report those itself). ``SUCCEEDED`` and ``FAILED`` are *not* notified from this
  event: the run reports them itself (the reliable path below, which carries the error),
  so subscribers get one message per final status, not two;
* ``dpc.pipeline`` / ``dpc Pipeline Run Status`` (the run's own report) →
  ``PIPELINE_FINISHED``;
* ``dpc.pipeline`` / ``dpc Step Status`` → ``STEP_STARTED`` / ``STEP_FINISHED``.

The note is published only when the pipeline's registered notification type wants it
(:func:`dpc_core.notify.wants`) and the pipeline registered alert targets. An event
whose account does not own the state machine it names, or about a state machine that
is not a registered pipeline, is ignored (logged).

The SNS message is readable by people (email, OpsGenie's SNS integration): ``Subject``
is the note's summary, ``Message`` the summary and its details. The note itself travels
as JSON in the message attribute ``dpc-notification`` (the Slack poster reads it);
``dpc-kind`` and ``dpc-status`` allow subscription filter policies.

Topic: ``info.topicArn`` of the registration, else the convention
``arn:aws:sns:<region>:<account>:dpc-<pipeline>``; only ever a topic of the pipeline's
own account: a registered topic of another account is ignored (logged as
``tracker-foreign-topic``) and the conventional one used. The registration API refuses
such a topic too; this check holds for entries stored before it did.

Environment: ``DPC_TABLE_REGISTRY``, ``DPC_TABLE_RUNS``, ``DPC_TABLE_WINDOWS`` (the run
log gives step notes their run's logical date; read access suffices).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from dpc_central.conventions import (
    FORWARDED_STATUS_SOURCE,
    RUN_STATUS_DETAIL_TYPE,
    RUN_STATUS_SOURCE,
    SFN_DETAIL_TYPE,
    SFN_SOURCE,
    STEP_STATUS_DETAIL_TYPE,
)
from dpc_central.handlers import _common as common

if TYPE_CHECKING:
    from dpc_core.types import EventKind

#: Message attribute carrying the note as JSON.
NOTE_ATTRIBUTE = "dpc-notification"
TOPIC_PREFIX = "dpc-"
_SELF_REPORTED = {"SUCCEEDED", "FAILED"}
_FINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}


def handle(event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
    """Lambda entry point: publishes zero or one notification per event."""
    records = event.get("Records") if isinstance(event, Mapping) else None
    if isinstance(records, list):
        published = 0
        for record in records:
            try:
                raw = json.loads(record["body"])
            except (KeyError, TypeError, ValueError):
                common.emit(logging.WARNING, "tracker-ignored", reason="unreadable record")
                continue
            published += 1 if track(raw) else 0
        return {"published": published}
    return {"published": 1 if track(event) else 0}


def track(raw: Any) -> bool:
    """Publish the note of one event if its pipeline wants it; True when published."""
    if not common.is_eventbridge_event(raw):
        common.emit(logging.WARNING, "tracker-ignored", reason="not an EventBridge event")
        return False
    note = to_notification(raw)
    if note is None:
        return False
    spec = common.store().get_pipeline(f"{note.account}/{note.pipeline}")
    if spec is None:
        common.emit(logging.INFO, "tracker-ignored", reason="pipeline not registered",
                    account=note.account, pipeline=note.pipeline)
        return False
    from dpc_core.notify import wants

    notifications = spec.info.get("notifications") or {}
    kind = notifications.get("type") or "FAILURES_ONLY"
    if not notifications.get("targets") or not wants(kind, note):
        return False
    own = topic_arn(str(raw.get("region") or ""), note.account, note.pipeline)
    topic = spec.info.get("topicArn") or own
    if not _in_account(topic, note.account):
        # A registration stored before the API checked it (or written around it) must not
        # carry one account's notes to another account's topic.
        common.emit(logging.ERROR, "tracker-foreign-topic", topic=topic,
                    account=note.account, pipeline=note.pipeline)
        topic = own
    publish(topic, note)
    return True


def _in_account(topic: Any, account: str) -> bool:
    """Whether ``topic`` is an SNS topic ARN of ``account``."""
    parts = topic.split(":") if isinstance(topic, str) else []
    return len(parts) == 6 and parts[0] == "arn" and parts[2] == "sns" and parts[4] == account


def topic_arn(region: str, account: str, pipeline: str) -> str:
    """The conventional topic of a pipeline (created by its pipeline stack)."""
    return f"arn:aws:sns:{region}:{account}:{TOPIC_PREFIX}{pipeline}"


def publish(topic: str, note: Any) -> None:
    """Publish ``note`` to ``topic`` (human text, the note as a JSON attribute)."""
    body = "\n".join([note.summary(), *note.details()])
    region = topic.split(":")[3]
    common.client("sns", region or None).publish(
        TopicArn=topic, Subject=_subject(note.summary()), Message=body,
        MessageAttributes={
            NOTE_ATTRIBUTE: {"DataType": "String", "StringValue": note_json(note)},
            "dpc-kind": {"DataType": "String", "StringValue": note.kind},
            "dpc-status": {"DataType": "String", "StringValue": note.status},
        })
    common.emit(logging.INFO, "notified", topic=topic, kind=note.kind, status=note.status,
                run=note.run_id, step=note.step)


def _subject(text: str) -> str:
    # SNS subjects: at most 100 printable ASCII characters, no line breaks.
    clean = "".join(c if 32 <= ord(c) < 127 else "?" for c in text)
    return clean[:100]


def note_json(note: Any) -> str:
    """A notification as JSON (inverse: :func:`note_from_json`)."""
    data = dataclasses.asdict(note)
    data["parents"] = [dict(p) for p in note.parents]
    return json.dumps(data, sort_keys=True)


def note_from_json(text: str) -> Any:
    """The :class:`~dpc_core.types.Notification` of :func:`note_json`."""
    from dpc_core.types import Notification

    data = json.loads(text)
    names = {f.name for f in dataclasses.fields(Notification)}
    data = {k: v for k, v in data.items() if k in names}
    data["parents"] = tuple(data.get("parents") or ())
    return Notification(**data)


def to_notification(raw: Mapping[str, Any]) -> Any:
    """The note an event stands for, or None (other events, spoofed ones, statuses the
    run reports itself)."""
    from dpc_core.events import StatusEvent
    from dpc_core.types import Notification

    source, kind = raw.get("source"), raw.get("detail-type")
    if source == RUN_STATUS_SOURCE and kind == STEP_STATUS_DETAIL_TYPE:
        return _step_note(raw)
    self_report = source == RUN_STATUS_SOURCE and kind == RUN_STATUS_DETAIL_TYPE
    if source == FORWARDED_STATUS_SOURCE and kind == SFN_DETAIL_TYPE:
        # A team account's forwarder: the AWS event without the run's data.
        from dpc_central.status_report import from_forwarded

        raw = from_forwarded(raw) or raw
        source = SFN_SOURCE
    if self_report:
        from dpc_central.status_report import to_status_event

        converted = to_status_event(raw)
        if converted is None:
            common.emit(logging.WARNING, "tracker-ignored", reason="malformed run report")
            return None
        raw = converted
    elif not (source == SFN_SOURCE and kind == SFN_DETAIL_TYPE):
        common.emit(logging.INFO, "tracker-ignored", reason=f"event {source}/{kind}")
        return None
    from dpc_core.errors import BadEvent

    try:
        ev = StatusEvent.parse(raw)
    except BadEvent as exc:
        common.emit(logging.WARNING, "tracker-ignored", reason=str(exc))
        return None
    if ev.arn_account != ev.account:
        common.emit(logging.WARNING, "tracker-ignored", reason="spoofed",
                    account=ev.account, stateMachineArn=ev.detail.state_machine_arn)
        return None
    status = ev.detail.status.value
    note_kind: EventKind
    if status == "RUNNING":
        note_kind = "PIPELINE_STARTED"
    elif status in _SELF_REPORTED and not self_report:
        return None  # the run's own report carries this status (and its error)
    else:
        note_kind = "PIPELINE_FINISHED"
    d = ev.detail
    duration = (d.stop_date - d.start_date) / 1000 if d.stop_date and status in _FINAL \
        else None
    dpc = ev.run_input.get("dpc")
    parents = tuple(dpc.get("parents") or ()) if isinstance(dpc, dict) else ()
    return Notification(
        kind=note_kind, pipeline=ev.pipeline, account=ev.account,
        logical_date=ev.logical_date or _date(d.start_date), run_id=d.execution_arn,
        status=status, duration_s=duration, error=_error(d.error, d.cause),
        parents=parents)


def _step_note(raw: Mapping[str, Any]) -> Any:
    from dpc_core.types import Notification

    d = raw.get("detail")
    if not isinstance(d, Mapping):
        return None
    arn, sm = str(d.get("executionArn") or ""), str(d.get("stateMachineArn") or "")
    step, status = d.get("step"), str(d.get("status") or "")
    parts = sm.split(":")
    if not (arn.startswith("arn:") and len(parts) > 6 and step and status):
        common.emit(logging.WARNING, "tracker-ignored", reason="malformed step report")
        return None
    if parts[4] != raw.get("account"):
        common.emit(logging.WARNING, "tracker-ignored", reason="spoofed",
                    account=raw.get("account"), stateMachineArn=sm)
        return None
    logical = None
    run = None
    try:
        run = common.store().get_run(arn)
    except Exception as exc:  # read access to the run log missing: date of the event
        common.emit(logging.WARNING, "tracker-run-log", error=f"{type(exc).__name__}: {exc}")
    if run is not None:
        logical = run.logical or _date(run.start_ms)
    if logical is None:
        logical = str(d.get("time") or raw.get("time") or "")[:10]
    return Notification(
        kind="STEP_STARTED" if status == "RUNNING" else "STEP_FINISHED",
        pipeline=parts[6], account=parts[4], logical_date=logical, run_id=arn,
        status=status, step=str(step), error=_error(d.get("error"), d.get("cause")))


def _date(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).strftime("%Y-%m-%d")


def _error(error: Any, cause: Any) -> str | None:
    parts = [str(x) for x in (error, cause) if x]
    return ": ".join(parts) if parts else None
