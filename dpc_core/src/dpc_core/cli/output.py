"""JSON shapes of what the CLI lists (``--format json``): one object per run or status.

Timestamps are ISO 8601 in UTC; durations are seconds. The shapes are a contract
scripts rely on: add keys, do not rename them.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dpc_core.aws_runs import AwsRun
    from dpc_core.local.state import RunRow
    from dpc_core.local.views import ChildStatus


def iso_ms(ms: int | None) -> str | None:
    """Milliseconds since the epoch as ISO 8601 UTC, or None."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


def run_json(row: RunRow, any_of: Collection[str] = (),
             redrive_count: int = 0) -> dict[str, Any]:
    """A local run (``redrive_count``: how many times ``dpc local redrive`` ran it again)."""
    from dpc_core.local.views import reason_text

    return {"run_id": row.run_id, "arn": row.arn, "pipeline": row.name,
            "account": row.account, "logical_date": row.logical_date, "status": row.status,
            "created": iso_ms(row.created_ms), "started": iso_ms(row.start_ms),
            "stopped": iso_ms(row.stop_ms), "duration_s": row.duration_s,
            "reason": row.reason, "why": reason_text(row, any_of), "parents": row.parents,
            "downstream": row.downstream, "error": row.error, "redrive_count": redrive_count}


def aws_run_json(run: AwsRun) -> dict[str, Any]:
    """An execution of a pipeline's state machine on AWS."""
    return {"name": run.name, "status": run.status, "arn": run.arn,
            "started": run.started.isoformat() if run.started else None,
            "stopped": run.stopped.isoformat() if run.stopped else None}


def child_json(child: ChildStatus) -> dict[str, Any]:
    """A child's condition for a date: which parent references hold, which wait."""
    return {"pipeline": child.pipeline, "account": child.account,
            "triggered": child.triggered, "holds": child.holds,
            "parents": [{"pipeline": r.pipeline, "account": r.account, "current": r.current,
                         "wants": list(r.statuses), "holds": r.holds} for r in child.refs]}


def dumps(data: Any) -> str:
    """Indented JSON, keys in the order written."""
    return json.dumps(data, indent=2, default=str)
