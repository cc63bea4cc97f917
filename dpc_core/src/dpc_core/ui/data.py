"""What the web UI shows, as plain JSON data read from a workspace's state database.

Read-only (actions live in :mod:`dpc_core.ui.server`); every function takes an open
:class:`~dpc_core.stores.sqlite.SqliteStore`. Statuses come from the runtime's own run
table (``lr_runs``), which knows a run as soon as it is queued, so the landscape and the
health counts change the moment the runtime writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from dpc_core.lineage import LineageGraph, build_graph
from dpc_core.local.state import RUN_COLUMNS, RunRow, run_row
from dpc_core.local.views import any_of_keys, list_runs, reason_text
from dpc_core.stores.sqlite import SqliteStore

if TYPE_CHECKING:
    from dpc_core.store import PipelineSpec

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
    specs = {s.key: s for s in store.pipelines()}
    latest = {k: (r.status, r.arn) for k, r in latest_statuses(store, date).items()}
    return health_of(store, specs, latest, date, now_ms)


def health_of(store: Any, specs: dict[str, PipelineSpec], latest: dict[str, tuple[str, str]],
              date: str, now_ms: int) -> dict[str, Any]:
    """:func:`health` from the registered ``specs`` and each one's latest ``(status,
    arn)`` for ``date``; ``store`` (any trigger store) answers what a failure blocks."""
    from dpc_core import health as h

    blocked: dict[str, str] = {}
    for key, (latest_status, arn) in latest.items():
        if latest_status not in FAILED or key not in specs:
            continue
        record = store.get_run(arn)
        if record is None:
            continue
        try:
            for b in h.blocked_downstream(store, record):
                blocked.setdefault(b.key, b.text())
        except (ValueError, KeyError):
            continue  # an unreadable condition is the engine's report, not the page's
    items: list[dict[str, Any]] = []
    for key, spec in sorted(specs.items()):
        status = latest[key][0] if key in latest else None
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


def _run(store: SqliteStore, r: RunRow, any_of: frozenset[str] = frozenset()) -> dict[str, Any]:
    return {"arn": r.arn, "run_id": r.run_id, "date": r.logical_date, "status": r.status,
            "reason": r.reason, "why": reason_text(r, any_of), "parents": r.parents,
            "created_ms": r.created_ms, "start_ms": r.start_ms, "stop_ms": r.stop_ms,
            "error": r.error, "steps": _steps(store, r.arn)}


def waits_of(store: Any, spec: Any, date: str) -> dict[str, Any] | None:
    """What ``spec``'s condition for ``date`` waits on, each part held or not (None for a
    pipeline without one); any trigger store (SQLite here, DynamoDB for --central)."""
    from dpc_core.engine import explain

    if spec.condition is None:
        return None
    window = store.window_state(spec.key, date)
    try:
        holds, refs = explain(spec.condition, window.slots, spec.account)
    except ValueError as exc:
        return {"error": str(exc)}
    return {"holds": holds, "triggered": window.generation > 0,
            "parts": [{"pipeline": r.pipeline, "account": r.account,
                       "statuses": list(r.statuses), "current": r.current,
                       "holds": r.holds} for r in refs]}


def pipeline(store: SqliteStore, key: str, date: str) -> dict[str, Any] | None:
    """A pipeline's page: its definition, runs (newest first), why its run for ``date``
    ran or what it waits on (each part of its condition ✓ or waiting), and the
    notifications sent about it. None when ``key`` is not registered."""
    from dpc_core.address_secrets import public_spec
    from dpc_core.local.notifications import list_notifications

    spec = store.get_pipeline(key)
    if spec is None:
        return None
    spec = public_spec(spec)
    any_of = any_of_keys(store)
    runs = [_run(store, r, any_of) for r in reversed(list_runs(store, key))]
    return {"key": key, "name": spec.name, "account": spec.account, "info": dict(spec.info),
            "condition": spec.condition, "window": spec.window, "date": date, "runs": runs,
            "waits": waits_of(store, spec, date),
            "notifications": list_notifications(store, pipeline=key),
            "backfills": backfills(store, key)}


def backfill_dict(b: Any) -> dict[str, Any]:
    """A :class:`dpc_core.local.backfill.Backfill` as the page shows its progress."""
    return {"id": b.id, "pipeline": b.pipeline, "from": b.date_from, "to": b.date_to,
            "downstream": b.downstream, "max_parallel": b.max_parallel,
            "counts": b.counts(), "line": b.line(),
            "dates": [{"date": d.date, "status": d.status, "attempt": d.attempt,
                       "run_id": d.run_id, "rollup": d.rollup, "why": d.why}
                      for d in b.dates]}


def backfills(store: SqliteStore, key: str) -> list[dict[str, Any]]:
    """The backfills of pipeline ``key`` with each date's state, newest first."""
    from dpc_core.local.backfill import list_backfills

    return [backfill_dict(b) for b in reversed(list_backfills(store.conn)) if b.pipeline == key]


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


def registry_marker(store: SqliteStore) -> int:
    """The registry's version: bumped by every pipeline registered, replaced or removed
    (so the runtime's catalog changes are told from status changes)."""
    row = store.conn.execute("SELECT version FROM registry_version WHERE id = 1").fetchone()
    return int(row[0]) if row else 0


class LocalWatch:
    """A page's watch on a local state: ``data_version`` every 150 ms (one page
    read); on a change, the registry version says whether the graph changed too."""

    interval = 0.15

    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        self.last = change_marker(store)
        self.registry = registry_marker(store)

    def poll(self) -> list[str]:
        """``[]``, ``["change"]`` or ``["graph", "change"]``."""
        now = change_marker(self.store)
        if now == self.last:
            return []
        self.last = now
        events = []
        registry = registry_marker(self.store)
        if registry != self.registry:
            self.registry = registry
            events.append("graph")
        return [*events, "change"]

    def close(self) -> None:
        """Close the watch's connection."""
        self.store.close()


class LocalSource:
    """The UI's data source over a local workspace (``.dpc/state.db``); every read opens
    its own connection (WAL: readers never block the runtime)."""

    blocking = False

    def __init__(self, workspace: Path) -> None:
        from dpc_core.local.runtime import Workspace

        self.ws = Workspace(workspace.resolve())

    def _read(self, fn: Any, *args: Any) -> Any:
        store = self.ws.connect()
        try:
            return fn(store, *args)
        finally:
            store.close()

    def graph(self, date: str) -> LineageGraph:
        """:func:`graph_of`."""
        return cast("LineageGraph", self._read(graph_of, date))

    def statuses(self, date: str) -> dict[str, Any]:
        """:func:`statuses`."""
        return cast("dict[str, Any]", self._read(statuses, date))

    def health(self, date: str, now_ms: int) -> dict[str, Any]:
        """:func:`health`."""
        return cast("dict[str, Any]", self._read(health, date, now_ms))

    def pipeline(self, key: str, date: str) -> dict[str, Any] | None:
        """:func:`pipeline`."""
        return cast("dict[str, Any] | None", self._read(pipeline, key, date))

    def log_chunk(self, arn: str, idx: int, offset: int) -> dict[str, Any]:
        """:func:`log_chunk`."""
        return cast("dict[str, Any]", self._read(log_chunk, arn, idx, offset))

    def grid(self, dates: list[str], filters: dict[str, str | None]) -> dict[str, Any]:
        """The run grid of the workspace (:func:`dpc_core.local.grid.local_grid`)."""
        from dpc_core.local.grid import local_grid

        def read(store: SqliteStore) -> dict[str, Any]:
            return local_grid(store, dates, **filters).to_dict()

        return cast("dict[str, Any]", self._read(read))

    def watch(self) -> LocalWatch:
        """A watch on its own connection."""
        return LocalWatch(self.ws.connect())

    def action(self, action: str, pipeline: str, date: str) -> str:
        """Queue the run as ``dpc local start`` / ``dpc rerun [--downstream]`` do."""
        from dpc_core.local.manual import queue_run

        reason, downstream = ACTIONS[action]
        return queue_run(self.ws.root, pipeline, date, reason, downstream)

    def backfill(self, pipeline: str, first: str, last: str,
                 downstream: bool) -> dict[str, Any]:
        """Record (or resume) the backfill as ``dpc backfill`` does; a running runtime
        is woken and releases its dates (at most 4 at once, the command's default)."""
        from dpc_core.local import backfill as bf
        from dpc_core.local.state import guarded

        days = bf.dates(first, last)
        key = self.ws.resolve(self.ws.keys(), pipeline)
        store = self.ws.connect()
        try:
            with guarded(self.ws.db_path), store.transaction():
                found = bf.record(store.conn, key, days, downstream, 4)
        finally:
            store.close()
        running = self.ws.poke()
        where = "the running runtime starts its dates" if running else \
            "its dates run when `dpc local up` starts"
        return {"message": f"backfill {found.id}: {found.line()}; {where}",
                "backfill": backfill_dict(found)}


#: Action name -> (reason of the run, downstream).
ACTIONS = {"run": ("manual", False), "rerun": ("rerun", False),
           "rerun-downstream": ("rerun-downstream", True)}
