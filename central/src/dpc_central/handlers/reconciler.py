"""The reconciler: terminal statuses that never reached the central account.

Step Functions delivers its status events best effort, and a run that times out or is
aborted cannot report itself. On a schedule, for every registered pipeline that has
children, the reconciler assumes the read-only role of the pipeline's account
(``arn:<partition>:iam::<account>:role/<DPC_READ_ROLE_NAME>``, the partition of the
function's region), lists the executions started in
the last ``DPC_RECONCILE_HOURS`` hours (default 48), and for each terminal one the run
log does not hold in that status (and redrive) it builds the status event AWS would
have sent — the real shape, with ``account`` = the pipeline's account — and hands it to
the engine. Duplicates are harmless (docs/triggers.md rule 1); decisions are put on the
central bus like the trigger manager's.

One account failing (role missing, throttled) does not stop the others; it is logged
and counted in the result.

Each pass also re-sends the trigger events of claims never marked delivered
(:func:`_common.redeliver_claims`: PutEvents failed after the claim, or the trigger
manager died in between), counted as ``redelivered``, and ends with the LATE and
BLOCKED notices (:mod:`dpc_central.handlers.health_notices`), counted as ``notices``.

Environment: ``DPC_TABLE_REGISTRY``, ``DPC_TABLE_RUNS``, ``DPC_TABLE_WINDOWS``,
``DPC_CENTRAL_BUS``, ``DPC_READ_ROLE_NAME`` (default ``dpc-central-reconciler-read-<region>``),
``DPC_RECONCILE_HOURS`` (optional), ``AWS_REGION`` (the region of the state machines).
"""

from __future__ import annotations

import json
import logging
import os
from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from dpc_central.conventions import ENV_READ_ROLE_NAME, RECONCILER_READ_ROLE, regional
from dpc_central.handlers import _common as common

ENV_RECONCILE_HOURS = "DPC_RECONCILE_HOURS"
_TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")


def handle(event: Mapping[str, Any] | None = None, context: Any = None) -> dict[str, Any]:
    """Lambda entry point (a scheduled event; its content is not used)."""
    return reconcile()


def reconcile(now: datetime | None = None) -> dict[str, Any]:
    """One pass over every account with registered parent pipelines."""
    store = common.store()
    hours = float(os.environ.get(ENV_RECONCILE_HOURS, "48"))
    since = (now or datetime.now(UTC)) - timedelta(hours=hours)
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or ""
    by_account: dict[str, list[str]] = defaultdict(list)
    specs = list(store.pipelines())
    # Only parents matter for triggering: a pipeline nobody depends on needs no repair.
    parents = {p for s in specs for p in s.parents}
    for spec in specs:
        if spec.key in parents:
            by_account[spec.account].append(spec.name)
    result: dict[str, Any] = {"accounts": 0, "fed": 0, "decisions": 0, "failedAccounts": [],
                              "redelivered": 0}
    try:
        result["redelivered"] = common.redeliver_claims(
            now_ms=int(now.timestamp() * 1000) if now else None)
    except Exception as exc:  # the executions below still deserve their pass
        common.emit(logging.ERROR, "redeliver-failed", error=f"{type(exc).__name__}: {exc}")
    for account, names in sorted(by_account.items()):
        try:
            fed, decided = _reconcile_account(account, sorted(names), region, since)
        except Exception as exc:
            common.emit(logging.ERROR, "reconcile-account-failed", account=account,
                        error=f"{type(exc).__name__}: {exc}")
            result["failedAccounts"].append(account)
            continue
        result["accounts"] += 1
        result["fed"] += fed
        result["decisions"] += decided
    # After the repairs above, so a lost FAILED reaches the notices in the same pass.
    try:
        from dpc_central.handlers.health_notices import notice_pass

        now_ms = int((now or datetime.now(UTC)).timestamp() * 1000)
        result["notices"] = notice_pass(store, now_ms, int(since.timestamp() * 1000), region)
    except Exception as exc:  # notices must not cost the repairs their result
        common.emit(logging.ERROR, "notices-failed", error=f"{type(exc).__name__}: {exc}")
    common.emit(logging.INFO, "reconciled", **result)
    return result


def _session(account: str, region: str) -> Any:
    """A session with the read role of ``account`` (in the partition of ``region``)."""
    import boto3

    role = os.environ.get(ENV_READ_ROLE_NAME) or regional(RECONCILER_READ_ROLE, region)
    creds = common.client("sts").assume_role(
        RoleArn=f"arn:{common.partition(region)}:iam::{account}:role/{role}",
        RoleSessionName="dpc-reconciler", DurationSeconds=900)["Credentials"]
    return boto3.Session(aws_access_key_id=creds["AccessKeyId"],
                         aws_secret_access_key=creds["SecretAccessKey"],
                         aws_session_token=creds["SessionToken"])


def _reconcile_account(account: str, names: list[str], region: str,
                       since: datetime) -> tuple[int, int]:
    from botocore.exceptions import ClientError

    session = _session(account, region or common.client("sts").meta.region_name)
    sfn = session.client("stepfunctions", region_name=region or None)
    region = sfn.meta.region_name
    store, engine = common.store(), common.engine()
    fed = decided = 0
    for name in names:
        sm = f"arn:{common.partition(region)}:states:{region}:{account}:stateMachine:{name}"
        try:
            executions = list(_recent(sfn, sm, since))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "StateMachineDoesNotExist":
                continue  # registered but not deployed (yet)
            raise
        for ex in executions:
            if ex["status"] not in _TERMINAL:
                continue
            redrives = int(ex.get("redriveCount") or 0)
            known = store.get_run(ex["executionArn"])
            if known is not None and (known.redrive_count > redrives or (
                    known.redrive_count == redrives and known.status in _TERMINAL)):
                continue  # the run log has a final status of this redrive, or a later one
            event = _status_event(sfn, ex, account, region)
            outcome = engine.handle(event)
            fed += 1
            if outcome.decisions:
                common.put_triggers(outcome.decisions)
                decided += len(outcome.decisions)
            common.emit(logging.INFO, "reconcile-fed", executionArn=ex["executionArn"],
                        status=ex["status"], recorded=str(outcome.recorded),
                        decisions=len(outcome.decisions), rejected=outcome.rejected)
    return fed, decided


def _recent(sfn: Any, state_machine: str, since: datetime) -> Any:
    """Executions started at or after ``since`` (ListExecutions is newest first)."""
    for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=state_machine):
        for ex in page["executions"]:
            if _aware(ex["startDate"]) < since:
                return
            yield ex


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _ms(value: datetime | None) -> int | None:
    return int(_aware(value).timestamp() * 1000) if value else None


def _status_event(sfn: Any, ex: Mapping[str, Any], account: str,
                  region: str) -> dict[str, Any]:
    """The ``Step Functions Execution Status Change`` event of a finished execution."""
    from dpc_core.events import make_status_event

    described = sfn.describe_execution(executionArn=ex["executionArn"])
    run_input = described.get("input")
    try:
        decoded = json.loads(run_input) if run_input else {}
    except ValueError:
        decoded = {}
    event = make_status_event(
        account=account, region=region, pipeline=ex["stateMachineArn"].rsplit(":", 1)[-1],
        execution=ex["name"], status=ex["status"], start_ms=_ms(ex["startDate"]) or 0,
        stop_ms=_ms(ex.get("stopDate")), input=decoded if isinstance(decoded, dict) else {},
        redrive_count=int(described.get("redriveCount") or ex.get("redriveCount") or 0),
        error=described.get("error"), cause=described.get("cause"),
        time=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        event_id=f"dpc-reconciler-{ex['executionArn']}-{ex['status']}")
    # Keep the input exactly as the run received it (its logical date lives there).
    if isinstance(run_input, str):
        event["detail"]["input"] = run_input
    return event
