"""The run grid over the local runtime's state: one SQL query over ``lr_runs`` for the
range (index ``lr_runs_logical``), the latest run of each pipeline and date."""

from __future__ import annotations

import sqlite3
from datetime import date, timedelta
from typing import Any

from dpc_core.grid import Cell, Grid, build

#: The query walks the index ``lr_runs_logical`` (:mod:`dpc_core.local.state`).

_QUERY = ("SELECT pipeline, substr(logical_date, 1, 10), status, run_id, arn FROM lr_runs "
          "WHERE logical_date >= ? AND logical_date < ? ORDER BY created_ms, rowid")


def local_cells(conn: sqlite3.Connection, dates: list[str]) -> dict[str, dict[str, Cell]]:
    """pipeline key -> date -> the latest run's cell, for ``dates`` (consecutive days).
    A logical date with a time (``2026-11-26T10:00``) counts for its day. One query,
    oldest run first: a later run of the same date replaces the cell (a window function
    per pipeline and date measured 5x slower at 700 pipelines x 30 dates)."""
    after = (date.fromisoformat(dates[-1]) + timedelta(days=1)).isoformat()
    out: dict[str, dict[str, Cell]] = {}
    for key, day, status, run_id, arn in conn.execute(_QUERY, (dates[0], after)):
        row = out.setdefault(key, {})
        seen = row.get(day)
        row[day] = Cell(status, run_id, arn, 1 if seen is None else seen.runs + 1)
    return out


def local_grid(store: Any, dates: list[str], **filters: Any) -> Grid:
    """The grid of a workspace's state (``store``: its SqliteStore)."""
    from dpc_core.address_secrets import public_spec
    from dpc_core.local.operator import paused_pipelines

    conn = store.conn
    specs = [public_spec(s) for s in store.pipelines()]
    return build(dates, specs, local_cells(conn, dates), paused=paused_pipelines(conn),
                 **filters)
