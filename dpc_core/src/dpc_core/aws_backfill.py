"""``dpc backfill --aws``: one execution of a pipeline's state machine per logical date.

Each execution is named after its date and attempt (``backfill-2026-11-26-a1``), so the
same command again is idempotent: Step Functions refuses a second execution of a name, and
the command first reads which dates already have one. A date whose latest attempt
SUCCEEDED is done, a RUNNING one is left alone, a failed one gets the next attempt. At most
``max_parallel`` of the backfill's executions run at once: the dates beyond are listed as
waiting, and the same command again starts them once others have finished. Children
follow per date through the central engine, as for any run (the input carries
``dpc.logicalDate``, and ``dpc.downstream`` with ``--downstream``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from dpc_core.aws_runs import _client, _errors, sfn_error, state_machine_arn
from dpc_core.errors import DpcError

_NAME = re.compile(r"backfill-(\d{4}-\d{2}-\d{2})-a(\d+)")


def execution_name(day: str, attempt: int) -> str:
    """The execution name of a backfill date's attempt."""
    return f"backfill-{day}-a{attempt}"


def _existing(sfn: Any, sm_arn: str) -> dict[str, tuple[int, str, str]]:
    """Latest backfill attempt per date: date -> (attempt, status, name)."""
    latest: dict[str, tuple[int, str, str]] = {}
    for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=sm_arn):
        for e in page.get("executions", []):
            m = _NAME.fullmatch(e["name"])
            if m is None:
                continue
            day, attempt = m[1], int(m[2])
            if day not in latest or attempt > latest[day][0]:
                latest[day] = (attempt, e["status"], e["name"])
    return latest


def run_backfill(pipeline: str, days: list[str], *, region: str | None = None,
                 downstream: bool = False, max_parallel: int = 4,
                 dry_run: bool = False) -> Iterator[str]:
    """Start what is not done of the backfill; yield one line per date (the progress)."""
    sfn, account, region_name = _client(region)
    sm = state_machine_arn(account, region_name, pipeline)
    try:
        latest = _existing(sfn, sm)
    except _errors() as exc:
        raise sfn_error(exc, f"cannot list runs of {pipeline!r}", pipeline, account,
                        region_name) from None
    running = sum(1 for d, (_, status, _) in latest.items() if d in days and status == "RUNNING")
    free = max(0, max_parallel - running)
    yield (f"{'plan' if dry_run else 'backfill'}: {pipeline} ({account}, {region_name}) for "
           f"{len(days)} date(s) {days[0]}..{days[-1]}, at most {max_parallel} at once")
    for day in days:
        attempt, status, name = latest.get(day, (0, "", ""))
        if status == "SUCCEEDED":
            yield f"  {day}  SUCCEEDED  {name}  done"
            continue
        if status == "RUNNING":
            yield f"  {day}  RUNNING    {name}"
            continue
        name = execution_name(day, attempt + 1)
        if dry_run:
            yield f"  {day}  would start {name} in {account}" + (
                f" (after {status} {execution_name(day, attempt)})" if attempt else "")
            continue
        if free <= 0:
            yield f"  {day}  waiting    (--max-parallel {max_parallel}; the same command " \
                  "again starts it)"
            continue
        dpc: dict[str, Any] = {"logicalDate": day, "parents": [], "reason": "backfill"}
        if downstream:
            dpc["downstream"] = True
        try:
            sfn.start_execution(stateMachineArn=sm, name=name, input=json.dumps({"dpc": dpc}))
        except _errors() as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
            if code != "ExecutionAlreadyExists":
                raise DpcError(f"cannot start {pipeline!r} for {day}: {exc}") from None
            yield f"  {day}  RUNNING    {name}  (already started)"
            continue
        free -= 1
        yield f"  {day}  started    {name}"
    if dry_run:
        yield "nothing was started (--dry-run)"
