"""Runs by hand on AWS: start a pipeline's state machine for a logical date, list runs.

The caller's credentials select the account (a pipeline's state machine is named exactly
the pipeline). The run's input carries ``dpc.logicalDate`` (and ``dpc.downstream`` for
``dpc rerun --downstream``), exactly as the trigger starter gives triggered runs, so the
central engine windows it by that date.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dpc_core.errors import DpcError


@dataclass(frozen=True)
class AwsRun:
    """One execution of a pipeline's state machine."""

    name: str
    status: str
    started: datetime | None
    stopped: datetime | None
    arn: str


def _client(region: str | None) -> tuple[Any, str, str]:
    from dpc_core.aws_session import aws_session

    session = aws_session(region)
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        account = session.client("sts").get_caller_identity()["Account"]
        return session.client("stepfunctions"), account, session.region_name
    except (BotoCoreError, ClientError) as exc:
        raise DpcError(f"cannot reach AWS with the current credentials: {exc}") from None


def _errors() -> tuple[type[Exception], ...]:
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError)


def state_machine_arn(account: str, region: str, pipeline: str) -> str:
    """The ARN of a pipeline's state machine (named exactly the pipeline)."""
    return f"arn:aws:states:{region}:{account}:stateMachine:{pipeline}"


def start_run(pipeline: str, logical_date: str, *, region: str | None = None,
              reason: str = "manual", downstream: bool = False) -> str:
    """Start the pipeline's state machine for ``logical_date``; return the execution ARN."""
    sfn, account, region_name = _client(region)
    dpc: dict[str, Any] = {"logicalDate": logical_date, "parents": [], "reason": reason}
    if downstream:
        dpc["downstream"] = True
    name = f"{reason}-{logical_date.replace(':', '')}-{uuid.uuid4().hex[:8]}"
    try:
        out = sfn.start_execution(
            stateMachineArn=state_machine_arn(account, region_name, pipeline), name=name,
            input=json.dumps({"dpc": dpc}))
    except _errors() as exc:
        raise sfn_error(exc, f"cannot start {pipeline!r}", pipeline, account,
                        region_name) from None
    return str(out["executionArn"])


def sfn_error(exc: Exception, doing: str, pipeline: str, account: str,
              region_name: str) -> DpcError:
    """The user error for a failed Step Functions call on ``pipeline``'s state machine:
    one that says to deploy it when it does not exist, else ``doing`` and the cause."""
    code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
    if code == "StateMachineDoesNotExist":
        return DpcError(f"no pipeline {pipeline!r} deployed in account {account} "
                        f"({region_name}); `dpc deploy` it first")
    return DpcError(f"{doing}: {exc}")


def list_runs(pipeline: str, *, region: str | None = None, limit: int = 50) -> list[AwsRun]:
    """The latest executions of the pipeline's state machine, newest first."""
    sfn, account, region_name = _client(region)
    try:
        page = sfn.list_executions(
            stateMachineArn=state_machine_arn(account, region_name, pipeline),
            maxResults=limit)
    except _errors() as exc:
        raise DpcError(f"cannot list runs of {pipeline!r}: {exc}") from None
    return [AwsRun(e["name"], e["status"], e.get("startDate"), e.get("stopDate"),
                   e["executionArn"]) for e in page.get("executions", [])]


#: How many of a pipeline's latest executions ``--date`` looks through (each is one
#: DescribeExecution, for its input's ``dpc.logicalDate``).
MAX_SCANNED = 100


def find_execution(sfn: Any, account: str, region_name: str, target: str,
                   date: str | None) -> str:
    """The execution ARN ``target`` names: an execution ARN as it is, or a pipeline's
    latest execution (with ``date``: its latest for that logical date). ListExecutions
    returns the most recent first (AWS, *ListExecutions*)."""
    if target.startswith("arn:"):
        if ":execution:" not in target:
            raise DpcError(f"{target!r} is not an execution ARN "
                           "(arn:aws:states:REGION:ACCOUNT:execution:PIPELINE:NAME)")
        return target
    scanned = 0
    token: str | None = None
    try:
        while scanned < MAX_SCANNED:
            page = sfn.list_executions(
                stateMachineArn=state_machine_arn(account, region_name, target),
                maxResults=min(100, MAX_SCANNED - scanned), **({"nextToken": token}
                                                               if token else {}))
            for e in page.get("executions", []):
                scanned += 1
                if date is None:
                    return str(e["executionArn"])
                described = sfn.describe_execution(executionArn=e["executionArn"])
                try:
                    logical = json.loads(described.get("input") or "{}")["dpc"]["logicalDate"]
                except (ValueError, KeyError, TypeError):
                    continue
                if logical == date:
                    return str(e["executionArn"])
            token = page.get("nextToken")
            if not token:
                break
    except _errors() as exc:
        raise sfn_error(exc, f"cannot list runs of {target!r}", target, account,
                        region_name) from None
    what = f"for {date} among its latest {scanned}" if date else "yet"
    raise DpcError(f"{target!r} has no execution {what}; `dpc runs --aws --pipeline "
                   f"{target}` lists them")


def redrive_run(target: str, date: str | None = None, *,
                region: str | None = None) -> dict[str, Any]:
    """Step Functions' RedriveExecution of the execution ``target`` names (see
    :func:`find_execution`), with the caller's credentials: the same execution continues
    from its unsuccessful step; its redriven status events reach the engine with
    ``redriveCount`` + 1. AWS's refusal (ExecutionNotRedrivable: it is running or
    succeeded, or older than 14 days) is one line."""
    sfn, account, region_name = _client(region)
    arn = find_execution(sfn, account, region_name, target, date)
    try:
        out = sfn.redrive_execution(executionArn=arn)
    except _errors() as exc:
        err = getattr(exc, "response", {}).get("Error", {})
        if err.get("Code"):
            raise DpcError(f"cannot redrive {arn}: {err['Code']}: "
                           f"{err.get('Message', '')}".rstrip(": ")) from None
        raise DpcError(f"cannot redrive {arn}: {exc}") from None
    when = out.get("redriveDate")
    return {"arn": arn, "redriveDate": when.isoformat() if isinstance(when, datetime) else when,
            "message": f"redriven {arn}"}
