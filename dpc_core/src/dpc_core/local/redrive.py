"""``dpc local redrive``: run a FAILED, TIMED_OUT or ABORTED run again from its first step
that did not succeed, as Step Functions' RedriveExecution does on AWS.

The same run (same ARN, logical date and start) goes back to PENDING with its redrive
count + 1 (``lr_redrives``, one row per redrive with the status it ended before). The
runtime (:mod:`dpc_core.local.runtime`) then skips the steps that SUCCEEDED, and emits
``RUNNING`` and a terminal status event carrying that ``redriveCount``: the engine applies
its existing redrive rules to them (docs/triggers.md). A running ``dpc local up`` is woken
and picks it up; with none up, it waits for the next one. An operator's cancel of the run
is moved into the redrive's row (kept on record, no longer aborting the run).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from dpc_core.errors import DpcError
from dpc_core.local import operator
from dpc_core.local.redrive_state import REDRIVABLE, count
from dpc_core.local.state import RUN_COLUMNS, guarded, now_ms, run_row


def redrive_run(root: Path, ident: str, date: str | None,
                by: str | None = None) -> dict[str, Any]:
    """Redrive one run of the workspace at ``root``; what happened (``message`` for people,
    the other keys for ``--format json``)."""
    from dpc_core.local.cancel import _find
    from dpc_core.local.runtime import Workspace

    ws = Workspace(root)
    store = ws.connect()
    row = _find(store, ws, ident, date)
    who = by or operator.operator_name()
    with guarded(ws.db_path), store.transaction():
        current = run_row(store.conn.execute(
            f"SELECT {RUN_COLUMNS} FROM lr_runs WHERE arn = ?", (row.arn,)).fetchone())
        if current.status not in REDRIVABLE:
            what = ("succeeded" if current.status == "SUCCEEDED" else
                    f"is still {current.status}")
            raise DpcError(f"run {row.run_id} of {row.name} {what}: only a FAILED, TIMED_OUT "
                           "or ABORTED run can be redriven")
        n = count(store.conn, row.arn) + 1
        abort = operator.abort_of(store.conn, row.arn)
        prior = current.error if abort is None else abort.text()
        store.conn.execute(
            "INSERT INTO lr_redrives (arn, count, by, requested_ms, prior_status, prior_error)"
            " VALUES (?, ?, ?, ?, ?, ?)", (row.arn, n, who[:100], now_ms(), current.status,
                                           prior))
        store.conn.execute("DELETE FROM lr_aborts WHERE arn = ?", (row.arn,))
        # The logs of the steps that will run again are kept beside theirs (a step's first
        # attempt starts its log afresh).
        for (log_path,) in store.conn.execute(
                "SELECT log_path FROM lr_steps WHERE arn = ? AND status != 'SUCCEEDED' AND "
                "log_path IS NOT NULL", (row.arn,)).fetchall():
            old = Path(log_path)
            with contextlib.suppress(OSError):
                old.rename(old.with_name(f"{old.stem}.before-redrive-{n}{old.suffix}"))
        # Back to PENDING; start_ms is kept (a redrive does not move a run).
        store.conn.execute("UPDATE lr_runs SET status = 'PENDING', stop_ms = NULL, "
                           "error = NULL, interrupted = 0 WHERE arn = ?", (row.arn,))
    up = operator.runtime_running(ws.state_dir)
    if up:
        ws.poke()
    how = ("the running runtime runs it" if up else "queued for the next `dpc local up`")
    message = (f"{row.pipeline} {row.run_id} for {row.logical_date}: redriven by {who} "
               f"(redrive {n}, was {current.status}); {how} from its first step that did "
               "not succeed")
    return {"arn": row.arn, "runId": row.run_id, "pipeline": row.pipeline,
            "logicalDate": row.logical_date, "status": "PENDING", "redriveCount": n,
            "priorStatus": current.status, "by": who, "message": message}
