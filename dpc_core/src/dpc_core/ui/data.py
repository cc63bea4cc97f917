"""What the web UI shows, as plain JSON data read from a workspace's state database.

Read-only (actions live in :mod:`dpc_core.ui.server`); every function takes an open
:class:`~dpc_core.stores.sqlite.SqliteStore`. Statuses come from the runtime's own run
table (``lr_runs``), which knows a run as soon as it is queued, so the landscape and the
health counts change the moment the runtime writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dpc_core.lineage import LineageGraph, build_graph
from dpc_core.local.state import RUN_COLUMNS, RunRow, run_row
from dpc_core.local.views import list_runs, reason_text
from dpc_core.stores.sqlite import SqliteStore

#: Health categories, in the order the page shows them.
CATEGORIES = ("failed", "late", "blocked", "waiting", "running", "succeeded")
FAILED = ("FAILED", "TIMED_OUT", "ABORTED")


def latest_statuses(store: SqliteStore, date: str) -> dict[str, RunRow]:
    """The latest run of each pipeline for ``date`` (from ``lr_runs``), by pipeline key."""
    out: dict[str, RunRow] = {}
    for r in store.conn.execute(
            f"SELECT {RUN_COLUMNS} FROM lr_runs WHERE substr(logical_date, 1, 10) = ? "
            "ORDER BY created_ms, rowid", (date,)):
        row = run_row(r)
        out[row.pipeline] = row
    return out


def graph_of(store: SqliteStore, date: str) -> LineageGraph:
    """The lineage graph of the workspace's registry with each pipeline's latest status
    for ``date`` (the run log of the runtime, queued runs included)."""
    from dpc_core.address_secrets import public_spec

    specs = [public_spec(s) for s in store.pipelines()]
    graph = build_graph(specs, None, date)
    latest = latest_statuses(store, date)
    nodes = {}
    from dataclasses import replace

    for key, n in graph.nodes.items():
        row = latest.get(key)
        nodes[key] = replace(n, status=row.status, run=row.arn) if row else n
    return LineageGraph(nodes, graph.edges, date)


def statuses(store: SqliteStore, date: str) -> dict[str, Any]:
    """``{key: [status, run arn]}`` for ``date``: what the landscape recolours on a change."""
    return {k: [r.status, r.arn] for k, r in latest_statuses(store, date).items()}


def health(store: SqliteStore, date: str, now_ms: int) -> dict[str, Any]:
    """Each pipeline's health category for ``date`` and counts per account and per owner.

    failed: its latest run ended FAILED/TIMED_OUT/ABORTED; running: RUNNING or queued;
    succeeded; blocked: not run and unable to run until a failed parent runs again
    (:func:`dpc_core.health.blocked_downstream`); waiting: not run yet otherwise. ``late``
    is a flag on top (past its deadline without a succeeded run, :func:`dpc_core.health.
    is_late`), counted in its own column.
    """
    from dpc_core import health as h

    specs = {s.key: s for s in store.pipelines()}
    latest = latest_statuses(store, date)
    blocked: dict[str, str] = {}
    for key, row in latest.items():
        if row.status not in FAILED or key not in specs:
            continue
        record = store.get_run(row.arn)
        if record is None:
            continue
        try:
            for b in h.blocked_downstream(store, record):
                blocked.setdefault(b.key, b.text())
        except (ValueError, KeyError):
            continue  # an unreadable condition is the engine's report, not the page's
    items: list[dict[str, Any]] = []
    for key, spec in sorted(specs.items()):
        latest_row = latest.get(key)
        status = latest_row.status if latest_row else None
        if status in FAILED:
            cat = "failed"
        elif status in ("RUNNING", "PENDING"):
            cat = "running"
        elif status == "SUCCEEDED":
            cat = "succeeded"
        elif key in blocked:
            cat = "blocked"
        else:
            cat = "waiting"
        try:
            late = spec.window == "daily" and h.is_late(spec, date, now_ms,
                                                        status == "SUCCEEDED")
        except (ValueError, KeyError):
            late = False
        items.append({"key": key, "account": spec.account, "name": spec.name,
                      "owner": h.owner_of(spec) or "(no owner)", "category": cat,
                      "late": late, "status": status, "why": blocked.get(key, "")})
    by: dict[str, dict[str, dict[str, int]]] = {"account": {}, "owner": {}}
    for it in items:
        for dim in ("account", "owner"):
            counts = by[dim].setdefault(it[dim], dict.fromkeys(CATEGORIES, 0))
            counts[it["category"]] += 1
            if it["late"]:
                counts["late"] += 1
    return {"date": date, "categories": list(CATEGORIES), "items": items, "by": by}


def _steps(store: SqliteStore, arn: str) -> list[dict[str, Any]]:
    return [{"idx": idx, "name": name, "type": typ, "status": status, "start_ms": start,
             "stop_ms": stop, "exit_code": code}
            for idx, name, typ, status, start, stop, code in store.conn.execute(
                "SELECT idx, name, type, status, start_ms, stop_ms, exit_code FROM lr_steps "
                "WHERE arn = ? ORDER BY idx", (arn,))]


def _run(store: SqliteStore, r: RunRow) -> dict[str, Any]:
    return {"arn": r.arn, "run_id": r.run_id, "date": r.logical_date, "status": r.status,
            "reason": r.reason, "why": reason_text(r), "parents": r.parents,
            "created_ms": r.created_ms, "start_ms": r.start_ms, "stop_ms": r.stop_ms,
            "error": r.error, "steps": _steps(store, r.arn)}


def pipeline(store: SqliteStore, key: str, date: str) -> dict[str, Any] | None:
    """A pipeline's page: its definition, runs (newest first), why its run for ``date``
    ran or what it waits on (each part of its condition ✓ or waiting), and the
    notifications sent about it. None when ``key`` is not registered."""
    from dpc_core.address_secrets import public_spec
    from dpc_core.engine import explain
    from dpc_core.local.notifications import list_notifications

    spec = store.get_pipeline(key)
    if spec is None:
        return None
    spec = public_spec(spec)
    runs = [_run(store, r) for r in reversed(list_runs(store, key))]
    waits: dict[str, Any] | None = None
    if spec.condition is not None:
        window = store.window_state(key, date)
        try:
            holds, refs = explain(spec.condition, window.slots, spec.account)
            waits = {"holds": holds, "triggered": window.generation > 0,
                     "parts": [{"pipeline": r.pipeline, "account": r.account,
                                "statuses": list(r.statuses), "current": r.current,
                                "holds": r.holds} for r in refs]}
        except ValueError as exc:
            waits = {"error": str(exc)}
    return {"key": key, "name": spec.name, "account": spec.account, "info": dict(spec.info),
            "condition": spec.condition, "window": spec.window, "date": date, "runs": runs,
            "waits": waits, "notifications": list_notifications(store, pipeline=key)}


def log_chunk(store: SqliteStore, arn: str, idx: int, offset: int,
              limit: int = 256 * 1024) -> dict[str, Any]:
    """Up to ``limit`` bytes of a step's log from ``offset`` (for live tailing), and
    whether the step is still running (more may come)."""
    row = store.conn.execute("SELECT status, log_path FROM lr_steps WHERE arn = ? AND idx = ?",
                             (arn, idx)).fetchone()
    if row is None:
        return {"text": "", "offset": offset, "running": False}
    status, path = row
    text = ""
    if path:
        try:
            with Path(path).open("rb") as fh:
                fh.seek(max(offset, 0))
                chunk = fh.read(limit)
        except OSError:
            chunk = b""
        # Never split a UTF-8 character across two chunks.
        cut = len(chunk)
        while cut and len(chunk) == limit and (chunk[cut - 1] & 0xC0) == 0x80:
            cut -= 1
        chunk = chunk[:cut]
        text = chunk.decode("utf-8", errors="replace")
        offset += len(chunk)
    return {"text": text, "offset": offset, "running": status in ("RUNNING", "PENDING")}


def change_marker(store: SqliteStore) -> tuple[int, ...]:
    """Something that changes whenever another connection commits to the state (SQLite's
    ``data_version``: one page read, no table scanned)."""
    version = store.conn.execute("PRAGMA data_version").fetchone()[0]
    return (int(version),)
