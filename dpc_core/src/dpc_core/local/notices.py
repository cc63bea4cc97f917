"""LATE and BLOCKED notices on the local runtime, and their resolution.

What is late or blocked is decided by :mod:`dpc_core.health` (the central reconciler uses
the same functions); this module keeps the local runtime's side in ``state.db``:

- ``lr_notices``: one row per (pipeline, window, kind): a notice is opened at most once per
  window, and resolved (``resolved_ms``) when the window's run succeeds;
- ``lr_deadlines``: the deadline of each pipeline's current window, inserted by the
  runtime's periodic check and marked when it fired. A runtime that was stopped when a
  deadline passed fires it at its next start: the row outlives the process.

Notices go to the pipeline's own targets through the same outbox as run notifications
(``kind = 'notify'``), inside the transaction that decided them, so a crash never loses
or repeats one (``dpc local notifications`` lists them with the others).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from dpc_core.engine import Outcome, window_of
from dpc_core.health import (
    FAILED,
    blocked_downstream,
    current_window,
    due_ms,
    late_text,
    waiting_on,
    who,
    window_succeeded,
)
from dpc_core.local.state import now_ms
from dpc_core.store import PipelineSpec, Recorded, RunRecord, split_pkey
from dpc_core.stores.sqlite import SqliteStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS lr_notices (
    pipeline TEXT NOT NULL,
    window TEXT NOT NULL,
    kind TEXT NOT NULL,
    text TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    resolved_ms INTEGER,
    resolved_by TEXT,
    PRIMARY KEY (pipeline, window, kind)
);
CREATE TABLE IF NOT EXISTS lr_deadlines (
    pipeline TEXT NOT NULL,
    window TEXT NOT NULL,
    due_ms INTEGER NOT NULL,
    fired_ms INTEGER,
    PRIMARY KEY (pipeline, window)
);
CREATE INDEX IF NOT EXISTS lr_deadlines_open ON lr_deadlines (due_ms) WHERE fired_ms IS NULL;
"""

#: Notice kind -> (notification kind, status word shown, notice id prefix).
KINDS = {"LATE": ("PIPELINE_LATE", "LATE", "late"),
         "BLOCKED": ("PIPELINE_BLOCKED", "BLOCKED", "blocked")}


def init(conn: sqlite3.Connection) -> None:
    """Create the notice tables (idempotent). Not inside a transaction: executescript
    commits first."""
    conn.executescript(SCHEMA)


@dataclass(frozen=True)
class NoticeRow:
    """One LATE or BLOCKED notice of a pipeline's window."""

    pipeline: str
    window: str
    kind: str
    text: str
    created_ms: int
    resolved_ms: int | None
    resolved_by: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON shape (``dpc local status --format json``)."""
        return {"pipeline": self.pipeline, "window": self.window, "kind": self.kind,
                "text": self.text, "createdMs": self.created_ms,
                "resolvedMs": self.resolved_ms, "resolvedBy": self.resolved_by}


def list_notices(conn: sqlite3.Connection, date: str | None = None) -> list[NoticeRow]:
    """Notices, oldest first; ``date`` keeps the windows of one day (none in a state
    written before notices existed)."""
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'lr_notices'").fetchone() is None:
        return []
    sql = ("SELECT pipeline, window, kind, text, created_ms, resolved_ms, resolved_by "
           "FROM lr_notices")
    args: tuple[str, ...] = ()
    if date:
        sql += " WHERE substr(window, 1, 10) = ?"
        args = (date,)
    return [NoticeRow(*r) for r in conn.execute(sql + " ORDER BY created_ms, pipeline", args)]


def _queue(conn: sqlite3.Connection, key: str, kind: str, status: str, window: str,
           notice_id: str, text: str) -> None:
    account, name = split_pkey(key)
    note = {"kind": kind, "pipeline": name, "account": account, "logical_date": window,
            "run_id": notice_id, "status": status, "message": text}
    conn.execute("INSERT INTO lr_outbox (kind, payload, created_ms) VALUES ('notify', ?, ?)",
                 (json.dumps({"pipeline": key, "note": note}), now_ms()))


def open_notice(conn: sqlite3.Connection, key: str, window: str, kind: str, text: str) -> bool:
    """Open a notice once per (pipeline, window, kind) and queue it to the pipeline's
    targets; False when it was already open (or resolved) for that window."""
    cur = conn.execute("INSERT OR IGNORE INTO lr_notices (pipeline, window, kind, text, "
                       "created_ms) VALUES (?, ?, ?, ?, ?)", (key, window, kind, text, now_ms()))
    if cur.rowcount != 1:
        return False
    note_kind, status, prefix = KINDS[kind]
    _queue(conn, key, note_kind, status, window, f"{prefix}:{window}", text)
    return True


def resolve(conn: sqlite3.Connection, spec: PipelineSpec, window: str, run: RunRecord) -> int:
    """The window's run succeeded: resolve its open notices (a RECOVERED message to the
    same targets, under the same notice id) and retire its deadline. How many resolved."""
    rows = conn.execute("SELECT kind FROM lr_notices WHERE pipeline = ? AND window = ? AND "
                        "resolved_ms IS NULL", (spec.key, window)).fetchall()
    conn.execute("UPDATE lr_deadlines SET fired_ms = COALESCE(fired_ms, ?) WHERE pipeline = ? "
                 "AND window = ?", (now_ms(), spec.key, window))
    run_id = run.arn.rsplit(":", 1)[-1]
    for (kind,) in rows:
        conn.execute("UPDATE lr_notices SET resolved_ms = ?, resolved_by = ? WHERE pipeline = ? "
                     "AND window = ? AND kind = ?", (now_ms(), run.arn, spec.key, window, kind))
        text = (f"{who(spec)} succeeded for {window} (run {run_id}); the {kind} notice is "
                "resolved")
        _queue(conn, spec.key, "NOTICE_RESOLVED", "RECOVERED", window,
               f"{KINDS[kind][2]}:{window}", text)
    return len(rows)


def after_event(store: SqliteStore, outcome: Outcome) -> int:
    """What a handled status event means for notices, in the engine's transaction: a run
    ending FAILED, TIMED_OUT or ABORTED opens BLOCKED notices downstream (not one an
    operator aborted: :mod:`dpc_core.local.operator`); a run ending
    SUCCEEDED resolves its own window's notices. How many notices were queued.

    Never costs the event its trigger decisions: an unexpected error undoes only the
    notices' writes (a savepoint) and is set aside (``dpc local problems``); a storage
    failure (disk full) is raised, for the runtime to retry the whole event."""
    run = outcome.run
    if run is None or outcome.recorded is not Recorded.NEW:
        return 0
    conn = store.conn
    # The store writes the engine's changes behind, on its next read: read now, so they
    # are written before the savepoint, which must cover the notices' writes only.
    store.get_run(run.arn)
    conn.execute("SAVEPOINT dpc_notices")
    try:
        queued = _after_event(store, run)
    except Exception as exc:
        from dpc_core.local.state import record_problem, storage_cause

        if storage_cause(exc) is not None:
            raise
        conn.execute("ROLLBACK TO dpc_notices")
        conn.execute("RELEASE dpc_notices")
        record_problem(conn, "notices", f"notices after {run.arn} {run.status}",
                       f"{type(exc).__name__}: {exc}")
        return 0
    conn.execute("RELEASE dpc_notices")
    return queued


def _after_event(store: SqliteStore, run: RunRecord) -> int:
    if run.status == "ABORTED":
        from dpc_core.local.operator import abort_of

        if abort_of(store.conn, run.arn) is not None:
            return 0  # an operator's cancel (or stop) is not a failure to announce
    if run.status in FAILED:
        return sum(open_notice(store.conn, b.key, b.window, "BLOCKED", b.text())
                   for b in blocked_downstream(store, run))
    if run.status == "SUCCEEDED":
        found = store.lookup(run.pipeline)
        if found is None:
            return 0
        spec = found[0]
        return resolve(store.conn, spec, window_of(run.start_ms, run.logical, spec.window,
                                                   spec.timezone), run)
    return 0


def check_deadlines(store: SqliteStore, specs: Iterable[PipelineSpec], now: int) -> int:
    """The runtime's periodic check (one transaction, the caller's): put the current
    window's deadline of each of ``specs`` on record, then fire every recorded deadline
    that has passed without a succeeded run: one LATE notice naming the parents still
    waited on. How many LATE notices were queued."""
    conn = store.conn
    by_key: dict[str, PipelineSpec] = {}
    for spec in specs:
        by_key[spec.key] = spec
        window = current_window(spec, now)
        due = due_ms(spec, window)
        if due is not None:
            # The deadline as the file says now: an edit moves a due time not yet fired.
            conn.execute("INSERT INTO lr_deadlines (pipeline, window, due_ms) VALUES (?, ?, ?) "
                         "ON CONFLICT (pipeline, window) DO UPDATE SET due_ms = excluded.due_ms "
                         "WHERE fired_ms IS NULL", (spec.key, window, due))
    fired = 0
    for key, window in conn.execute(
            "SELECT pipeline, window FROM lr_deadlines WHERE fired_ms IS NULL AND due_ms <= ? "
            "ORDER BY due_ms", (now,)).fetchall():
        found = (by_key[key], []) if key in by_key else store.lookup(key)
        if found is None:  # the pipeline was removed from the workspace
            conn.execute("DELETE FROM lr_deadlines WHERE pipeline = ? AND window = ?",
                         (key, window))
            continue
        spec = found[0]
        # Recorded with the deadline of its day; the file may say otherwise since (an
        # edit while the runtime was down, or of a window that is no longer current).
        due = due_ms(spec, window)
        if due is None:  # the deadline was removed
            conn.execute("DELETE FROM lr_deadlines WHERE pipeline = ? AND window = ?",
                         (key, window))
            continue
        if due > now:  # moved later: it fires then
            conn.execute("UPDATE lr_deadlines SET due_ms = ? WHERE pipeline = ? AND "
                         "window = ?", (due, key, window))
            continue
        conn.execute("UPDATE lr_deadlines SET fired_ms = ? WHERE pipeline = ? AND window = ?",
                     (now, key, window))
        if window_succeeded(store, spec, window):  # the engine's run log, as on AWS
            continue
        fired += open_notice(conn, key, window, "LATE",
                             late_text(spec, window, waiting_on(store, spec, window)))
    return fired


def notices_table(rows: list[NoticeRow]) -> str:
    """Notices as lines for ``dpc local status``."""
    out = []
    for r in rows:
        state = "resolved" if r.resolved_ms else "open"
        out.append(f"  {r.kind:<8} {state:<8} {r.text}")
    return "\n".join(out)
