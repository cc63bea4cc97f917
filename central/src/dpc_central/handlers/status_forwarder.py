"""The status forwarder (team account): dpc's Step Functions status events → central.

A rule on the account's default bus sends every ``Step Functions Execution Status
Change`` here. The event reaches the central account only when its state machine is
dpc's (it carries the tag ``dpc-pipeline``: ``ListTagsForResource``, cached per
container), and only with what the engine and the execution tracker read: the ARNs,
name, status, dates, redrive count, the error *name*, the ``cause`` of a run that timed
out or was stopped (Step Functions' or the caller's words, which the notification of such
a run quotes: these runs send no report of their own) and, of the run's input, its
``dpc`` object (logical date, parents). Step input and output, the cause of a failed run
(whose own report carries its error) and other state machines' events stay in the
account.

Why a function and not the rule's own target: a rule whose target is another account's
bus forwards the event as it is — EventBridge documents input transformers for targets
that are AWS services or API destinations, and CDK's ``EventBus`` target takes no input
options — and a caller cannot put an ``aws.*`` source. So the event goes out with source
``dpc.states`` and the AWS shape; EventBridge stamps the sender's ``account``, so the
engine's ownership check (the account of the state machine ARN) still holds.

Environment: ``DPC_CENTRAL_BUS`` (the central bus ARN).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from typing import Any

from dpc_central.conventions import (
    ENV_CENTRAL_BUS,
    FORWARDED_STATUS_SOURCE,
    SFN_DETAIL_TYPE,
    SFN_SOURCE,
    SFN_TAG_PIPELINE,
)
from dpc_central.handlers import _common as common

#: Fields of ``detail`` forwarded as they are.
KEPT = ("executionArn", "stateMachineArn", "name", "status", "startDate", "stopDate",
        "redriveCount", "redriveStatus")
#: How long a state machine's answer (dpc's or not) is reused.
CACHE_S = 300
#: An error name is an identifier (``States.Timeout``); longer text is not forwarded.
MAX_ERROR_CHARS = 256
#: Statuses whose ``cause`` is forwarded (no run report follows them), and its length.
CAUSE_STATUSES = ("TIMED_OUT", "ABORTED")
MAX_CAUSE_CHARS = 1000
_tags: dict[str, tuple[float, bool]] = {}


class ForwardFailed(Exception):
    """PutEvents refused the event: the invocation fails, so Lambda retries it (then the
    rule's dead-letter queue)."""


def handle(event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
    """Lambda entry point: one status event from the default bus."""
    if event.get("source") != SFN_SOURCE or event.get("detail-type") != SFN_DETAIL_TYPE:
        return {"forwarded": False, "reason": "not a Step Functions status event"}
    detail = event.get("detail")
    if not isinstance(detail, Mapping):
        return {"forwarded": False, "reason": "no detail"}
    machine = str(detail.get("stateMachineArn") or "")
    if not is_dpc_state_machine(machine):
        return {"forwarded": False, "reason": "not a dpc state machine"}
    entry: dict[str, Any] = {
        "Source": FORWARDED_STATUS_SOURCE, "DetailType": SFN_DETAIL_TYPE,
        "Detail": json.dumps(trimmed(detail), sort_keys=True),
        "EventBusName": os.environ[ENV_CENTRAL_BUS],
        "Resources": [str(detail.get("executionArn") or "")]}
    answer = common.client("events").put_events(Entries=[entry])
    if answer.get("FailedEntryCount"):
        failed = answer["Entries"][0]
        raise ForwardFailed(f"{failed.get('ErrorCode')}: {failed.get('ErrorMessage')}")
    common.emit(logging.INFO, "status-forwarded", executionArn=detail.get("executionArn"),
                status=detail.get("status"))
    return {"forwarded": True}


def trimmed(detail: Mapping[str, Any]) -> dict[str, Any]:
    """What central reads of ``detail``: no output, no cause, of the input only ``dpc``."""
    out = {k: detail[k] for k in KEPT if detail.get(k) is not None}
    error = detail.get("error")
    if isinstance(error, str) and error:
        out["error"] = error[:MAX_ERROR_CHARS]
    cause = detail.get("cause")
    if isinstance(cause, str) and cause and detail.get("status") in CAUSE_STATUSES:
        out["cause"] = cause[:MAX_CAUSE_CHARS]
    raw = detail.get("input")
    try:
        decoded = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        decoded = None
    if isinstance(decoded, dict) and "dpc" in decoded:
        out["input"] = json.dumps({"dpc": decoded["dpc"]}, sort_keys=True)
    return out


def is_dpc_state_machine(arn: str, now: float | None = None) -> bool:
    """Whether the state machine carries the ``dpc-pipeline`` tag (cached ``CACHE_S``)."""
    if ":stateMachine:" not in arn:
        return False
    now = time.monotonic() if now is None else now
    hit = _tags.get(arn)
    if hit is not None and now - hit[0] < CACHE_S:
        return hit[1]
    from botocore.exceptions import ClientError

    try:
        tags = common.client("stepfunctions").list_tags_for_resource(resourceArn=arn)["tags"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("ResourceNotFound",
                                                          "ResourceNotFoundException"):
            _tags[arn] = (now, False)
            return False
        raise
    ours = any(t.get("key") == SFN_TAG_PIPELINE for t in tags)
    _tags[arn] = (now, ours)
    return ours
