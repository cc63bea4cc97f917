"""Read-only views of a workspace's state: runs, timeline, logs, status for a date."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from dpc_core.engine import RefState, explain
from dpc_core.errors import DpcError
from dpc_core.local.state import RUN_COLUMNS, RunRow, run_row
from dpc_core.stores.sqlite import SqliteStore


def _at(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def at_utc(ms: int | None) -> str:
    """Milliseconds since the epoch as ``YYYY-MM-DD HH:MM:SS`` (UTC); ``-`` for none."""
    return _at(ms)


def any_of_keys(store: SqliteStore) -> frozenset[str]:
    """Pipelines whose condition is an ``anyOf`` at the top: any one parent run triggers
    them, so their reasons join parents with "or" (see :func:`reason_text`)."""
    return frozenset(k for (k,) in store.conn.execute(
        "SELECT key FROM pipelines WHERE json_extract(spec, '$.condition.anyOf') IS NOT NULL"))


def reason_text(row: RunRow, any_of: bool | Collection[str] = False) -> str:
    """Why a run ran: by hand, on schedule, or which parent runs triggered it (joined
    with "+" when all were needed, "or" when any one was: ``any_of`` is True or holds the
    run's pipeline key, from :func:`any_of_keys`)."""
    if not isinstance(any_of, bool):
        any_of = row.pipeline in any_of
    if row.reason == "trigger":
        return "triggered by " + (" or " if any_of else " + ").join(
            f"{p['pipeline']}@{p['account']} {p['status']} ({p['executionArn'].rsplit(':', 1)[-1]})"
            for p in row.parents)
    return {"manual": "started by hand", "schedule": "schedule", "rerun": "rerun by hand",
            "rerun-downstream": "rerun by hand, downstream",
            "resumed": "run again: the runtime stopped during its last run",
            "catch-up": "catch-up of a missed schedule firing"}.get(row.reason,
                                                                               row.reason)


def list_runs(store: SqliteStore, pipeline: str | None = None, date: str | None = None) -> list[
    RunRow
]:
    """Runs, oldest first, optionally of one pipeline key and logical date."""
    sql = f"SELECT {RUN_COLUMNS} FROM lr_runs WHERE 1=1"
    args: list[str] = []
    if pipeline:
        sql += " AND pipeline = ?"
        args.append(pipeline)
    if date:
        sql += " AND substr(logical_date, 1, 10) = ?"
        args.append(date)
    return [run_row(r) for r in store.conn.execute(sql + " ORDER BY created_ms, arn", args)]


def runs_table(rows: list[RunRow], any_of: Collection[str] = ()) -> str:
    """Runs as an aligned text table."""
    table = [("STARTED (UTC)", "PIPELINE", "ACCOUNT", "DATE", "STATUS", "SECS", "RUN", "WHY")]
    for r in rows:
        table.append((_at(r.start_ms or r.created_ms), r.name, r.account, r.logical_date,
                      r.status, f"{r.duration_s:.1f}" if r.duration_s is not None else "-",
                      r.run_id, reason_text(r, any_of)))
    widths = [max(len(t[i]) for t in table) for i in range(len(table[0]))]
    return "\n".join("  ".join(c.ljust(widths[i]) for i, c in enumerate(t)).rstrip()
                     for t in table)


def timeline(rows: list[RunRow], any_of: Collection[str] = ()) -> str:
    """Each run on a time axis relative to the first, with its trigger reason."""
    if not rows:
        return "no runs yet"
    rows = sorted(rows, key=lambda r: (r.start_ms or r.created_ms, r.arn))
    t0 = rows[0].start_ms or rows[0].created_ms
    lines = []
    for r in rows:
        start = ((r.start_ms or r.created_ms) - t0) / 1000
        stop = f"{(r.stop_ms - t0) / 1000:7.2f}s" if r.stop_ms else "    ...  "
        lines.append(f"+{start:7.2f}s → {stop}  {r.name:<18} {r.account}  {r.status:<9} "
                     f"{r.logical_date}  {reason_text(r, any_of)}")
        if r.error:
            lines.append(f"{'':30}error: {r.error}")
    return "\n".join(lines)


def find_run(store: SqliteStore, ident: str) -> RunRow:
    """A run by ARN, run id, or unique run-id prefix."""
    rows = store.conn.execute(
        f"SELECT {RUN_COLUMNS} FROM lr_runs WHERE arn = ? OR run_id = ? OR run_id LIKE ?",
        (ident, ident, ident + "%")).fetchall()
    if not rows:
        # A pipeline's name stands for its latest run: what a user reaches for first.
        rows = store.conn.execute(
            f"SELECT {RUN_COLUMNS} FROM lr_runs WHERE pipeline = ? OR pipeline LIKE ? "
            "ORDER BY created_ms DESC, rowid DESC LIMIT 1", (ident, "%/" + ident)).fetchall()
    if not rows:
        raise DpcError(f"no run {ident!r}; `dpc local runs` lists them")
    if len(rows) > 1:
        exact = [r for r in rows if r[0] == ident or r[1] == ident]
        if len(exact) != 1:
            raise DpcError(f"{ident!r} matches {len(rows)} runs; give the full ARN")
        rows = exact
    return run_row(rows[0])


def step_logs(store: SqliteStore, run: RunRow) -> list[tuple[str, str, str]]:
    """(step, status, log text) of each step of a run; the status names the attempt
    after the first (``FAILED, attempt 3``: the step's ``retries``)."""
    out = []
    for name, status, log_path, attempt in store.conn.execute(
            "SELECT name, status, log_path, attempt FROM lr_steps WHERE arn = ? ORDER BY idx",
            (run.arn,)):
        if attempt and attempt > 1:
            status = f"{status}, attempt {attempt}"
        try:
            text = Path(log_path).read_text(errors="replace") if log_path else ""
        except OSError:
            text = "(log file missing)"
        out.append((name, status, text))
    return out


@dataclass(frozen=True)
class ChildStatus:
    """A child pipeline's condition for one date: which parts hold, which wait."""

    pipeline: str
    account: str
    triggered: bool
    holds: bool
    refs: list[RefState]

    def line(self) -> str:
        """``pipeline-x: listings SUCCEEDED ✓, searches — waiting``."""
        parts = []
        for ref in self.refs:
            if ref.holds:
                parts.append(f"{ref.pipeline} {ref.current} ✓")
            elif ref.current is None:
                parts.append(f"{ref.pipeline} — waiting")
            else:
                parts.append(f"{ref.pipeline} {ref.current} (wants {'/'.join(ref.statuses)})")
        head = "triggered" if self.triggered else ("ready" if self.holds else "waiting")
        return f"{self.pipeline}@{self.account} [{head}]: " + ", ".join(parts)


def status_for(store: SqliteStore, date: str) -> tuple[list[tuple[str, RunRow | None]],
                                                      list[ChildStatus]]:
    """Latest run of every pipeline for ``date`` and the state of every child's condition."""
    latest: list[tuple[str, RunRow | None]] = []
    children: list[ChildStatus] = []
    for spec in store.pipelines():
        runs = list_runs(store, spec.key, date)
        latest.append((spec.key, runs[-1] if runs else None))
        if spec.condition is None:
            continue
        window = store.window_state(spec.key, date)
        holds, refs = explain(spec.condition, window.slots, spec.account)
        children.append(ChildStatus(spec.name, spec.account, window.generation > 0, holds, refs))
    return latest, children
