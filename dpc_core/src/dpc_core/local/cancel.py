"""``dpc local cancel``: end one run ABORTED, recorded with who cancelled it and why.

The cancel is recorded in ``state.db`` (:mod:`dpc_core.local.operator`) first. A running
``dpc local up`` is woken and carries it out (it owns the step's process); with no runtime
up, this command terminates the step's process group itself (a step a dead runtime left
running) and records the run's end, whose status event and notification are handled by
the next ``dpc local up``.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dpc_core.errors import DpcError
from dpc_core.local import operator
from dpc_core.local.state import RUN_COLUMNS, TERMINAL, RunRow, guarded, now_ms, run_row
from dpc_core.stores.sqlite import SqliteStore

if TYPE_CHECKING:
    from dpc_core.local.runtime import Workspace

#: How long the command waits for a running runtime to end the run.
WAIT_S = 15.0


def _find(store: SqliteStore, ws: Workspace, ident: str, date: str | None) -> RunRow:
    from dpc_core.local.views import find_run

    if date is None:
        return find_run(store, ident)
    key = ws.resolve(ws.keys(), ident)
    row = store.conn.execute(
        f"SELECT {RUN_COLUMNS} FROM lr_runs WHERE pipeline = ? AND logical_date = ? "
        "ORDER BY created_ms DESC, rowid DESC LIMIT 1", (key, date)).fetchone()
    if row is None:
        raise DpcError(f"{key} has no run for {date}; `dpc local runs --pipeline "
                       f"{key.split('/', 1)[1]}` lists its runs")
    return run_row(row)


def cancel_run(root: Path, ident: str, date: str | None, reason: str,
               by: str | None = None) -> dict[str, Any]:
    """Cancel one run of the workspace at ``root``; what happened (``message`` for
    people, the other keys for ``--format json``)."""
    from dpc_core.local.runtime import Runtime, Workspace

    ws = Workspace(root)
    store = ws.connect()
    row = _find(store, ws, ident, date)
    if row.status in TERMINAL:
        raise DpcError(f"run {row.run_id} of {row.name} already ended {row.status}: "
                       "nothing to cancel")
    who = by or operator.operator_name()
    with guarded(ws.db_path), store.transaction():
        operator.request(store.conn, row.arn, who, reason)
    if operator.runtime_running(ws.state_dir):
        ws.poke()
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            status = store.conn.execute("SELECT status FROM lr_runs WHERE arn = ?",
                                        (row.arn,)).fetchone()[0]
            if status in TERMINAL:
                break
            time.sleep(0.1)
        how = ", by the running runtime"
    else:
        # No runtime: the step (if any) was left by a dead one; end it and record it here.
        for pid, log_path in store.conn.execute(
                "SELECT pid, log_path FROM lr_steps WHERE arn = ? AND status = 'RUNNING'",
                (row.arn,)).fetchall():
            if pid is None and log_path:  # the pid file beside the log, as the recovery
                with contextlib.suppress(OSError, ValueError):
                    pid = int(Path(log_path).with_suffix(".pid").read_text())
            if pid:
                operator.terminate_group(int(pid))
        recorder = Runtime(root, schedules=False, registry=ws.registry)
        recorder.store = store
        with guarded(ws.db_path), store.transaction():
            current = run_row(store.conn.execute(
                f"SELECT {RUN_COLUMNS} FROM lr_runs WHERE arn = ?", (row.arn,)).fetchone())
            if current.status not in TERMINAL:
                store.conn.execute("UPDATE lr_steps SET status = 'ABORTED', stop_ms = ? "
                                   "WHERE arn = ? AND status = 'RUNNING'", (now_ms(), row.arn))
                recorder._finish(current, "ABORTED", None)
        how = "; its status event and notifications are sent by the next `dpc local up`"
    final = run_row(store.conn.execute(f"SELECT {RUN_COLUMNS} FROM lr_runs WHERE arn = ?",
                                       (row.arn,)).fetchone())
    done = final.status == "ABORTED"
    message = (f"{row.pipeline} {row.run_id} for {row.logical_date}: "
               + (f"ABORTED, cancelled by {who}" + (f" ({reason})" if reason else "") + how
                  if done else f"cancel requested by {who}; the running runtime is ending it"))
    return {"arn": row.arn, "runId": row.run_id, "pipeline": row.pipeline,
            "logicalDate": row.logical_date, "status": final.status, "by": who,
            "reason": reason, "message": message}
