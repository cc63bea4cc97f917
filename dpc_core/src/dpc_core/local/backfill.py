"""Backfills on the local runtime: one run of a pipeline per logical date, at most N at once.

``dpc backfill`` records the backfill and its dates in ``state.db`` (``lr_backfills``,
``lr_backfill_dates``); a date without a run is *held*. The runtime releases held dates
as PENDING runs while fewer than ``max_parallel`` of the backfill's runs are pending or
running (at start and on its periodic check), so the limit survives restarts and crashes
like the rest of the state. Children follow per date through the engine, as for any run
(once per window; ``rerun`` applies; ``--downstream`` re-runs them as ``dpc rerun
--downstream`` does).

A backfill is named by its pipeline, range and ``--downstream``: the same command again
is the same backfill, and it starts only what is not done: a date whose run succeeded is
done, a date whose run is pending or running is left alone, a date whose run failed is
held again for a new attempt. Backfills that overlap share their common dates: a date
that already has a pending, running or succeeded run of the pipeline (another backfill's,
a schedule's, a rerun's) is given that run instead of a second one.

A run that ended only because the runtime stopped (Ctrl-C, SIGTERM, ``kill -9``: its
``lr_runs.interrupted`` is 1) is not a failure of the data: at the next start, such a
run of a backfill's date, or of a pipeline downstream of it, runs again
(:func:`resume_interrupted`), so a resumed backfill leaves no child undone. A run that
failed for real is not repeated by itself: the same ``dpc backfill`` command again tries
its date again (and ``dpc rerun`` a child).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from dpc_core.errors import DpcError
from dpc_core.local.state import now_ms

SCHEMA = """
CREATE TABLE IF NOT EXISTS lr_backfills (
    id TEXT PRIMARY KEY,
    pipeline TEXT NOT NULL,
    date_from TEXT NOT NULL,
    date_to TEXT NOT NULL,
    downstream INTEGER NOT NULL,
    max_parallel INTEGER NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS lr_backfill_dates (
    backfill TEXT NOT NULL,
    date TEXT NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 1,
    arn TEXT,
    PRIMARY KEY (backfill, date)
);
CREATE INDEX IF NOT EXISTS lr_backfill_held ON lr_backfill_dates (backfill, date)
    WHERE arn IS NULL;
"""

#: ``(pipeline key, run id, logical date, downstream) -> ARN``, None when it already exists.
QueueRun = Callable[[str, str, str, bool], "str | None"]

#: A backfill longer than this is surely a typo in a date (ten years of days).
MAX_DATES = 3660


class BadRange(DpcError):
    """``--from``/``--to`` that are not dates, or the wrong way round."""


#: Columns of ``lr_backfills`` added after it first shipped: who cancelled it, why, when.
_CANCEL_COLUMNS = ("cancelled_ms INTEGER", "cancelled_by TEXT", "cancel_reason TEXT")


def init(conn: sqlite3.Connection) -> None:
    """Create the backfill tables (idempotent; not inside a transaction), and add the
    columns a state from an older dpc lacks."""
    conn.executescript(SCHEMA)
    have = {r[1] for r in conn.execute("PRAGMA table_info(lr_backfills)")}
    for column in _CANCEL_COLUMNS:
        if column.split()[0] not in have:
            with contextlib.suppress(sqlite3.OperationalError):  # another process added it
                conn.execute(f"ALTER TABLE lr_backfills ADD COLUMN {column}")


def _has_cancel(conn: sqlite3.Connection) -> bool:
    return "cancelled_ms" in {r[1] for r in conn.execute("PRAGMA table_info(lr_backfills)")}


def dates(first: str, last: str) -> list[str]:
    """Every date from ``first`` to ``last`` (``YYYY-MM-DD``), both included."""
    try:
        # fromisoformat also takes 2026-W48-4, 20261126, 2026-330: not what this says.
        if not all(re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", d) for d in (first, last)):
            raise ValueError(first)
        d0, d1 = date.fromisoformat(first), date.fromisoformat(last)
    except ValueError:
        raise BadRange(f"--from {first!r} / --to {last!r}: dates are written YYYY-MM-DD") \
            from None
    if d1 < d0:
        raise BadRange(f"--to {last} is before --from {first}")
    days = (d1 - d0).days + 1
    if days > MAX_DATES:
        raise BadRange(f"{days} dates from {first} to {last}: at most {MAX_DATES} in one "
                       "backfill")
    return [(d0 + timedelta(days=i)).isoformat() for i in range(days)]


def backfill_id(pipeline: str, first: str, last: str, downstream: bool) -> str:
    """The backfill's name: the same command again names the same backfill."""
    digest = hashlib.sha256(f"{pipeline}|{first}|{last}|{downstream}".encode()).hexdigest()
    return digest[:10]


@dataclass(frozen=True)
class DateState:
    """One date of a backfill: ``held`` (no run yet), or its run's status."""

    date: str
    attempt: int
    arn: str | None
    status: str  # HELD, PENDING, RUNNING, SUCCEEDED, FAILED, ... (the date's own run)
    run_id: str | None
    #: The date with its children: PENDING, RUNNING, SUCCEEDED, FAILED or CANCELLED. A
    #: date whose run succeeded but a child's failed is FAILED; one whose child still runs
    #: is RUNNING.
    rollup: str = ""
    #: The latest run of each pipeline downstream of the date's run (through the parents
    #: that caused them): ``(pipeline key, status, run id)``.
    children: tuple[tuple[str, str, str], ...] = ()

    @property
    def why(self) -> str:
        """What made the rollup differ from the date's own run, or ''."""
        bad = [c for c in self.children if c[1] in FAILED]
        if self.status == "SUCCEEDED" and bad:
            return "; ".join(f"child {k.split('/', 1)[1]} {st} ({rid})" for k, st, rid in bad)
        busy = [c for c in self.children if c[1] in ("PENDING", "RUNNING")]
        if self.status == "SUCCEEDED" and busy:
            return "; ".join(f"child {k.split('/', 1)[1]} {st}" for k, st, _ in busy)
        return ""

    def to_dict(self) -> dict[str, Any]:
        """JSON shape (``status``: the date's own run; ``rollup``: with its children)."""
        return {"date": self.date, "status": self.status, "rollup": self.rollup,
                "runId": self.run_id, "attempt": self.attempt, "why": self.why,
                "children": [{"pipeline": k.split("/", 1)[1], "account": k.split("/", 1)[0],
                              "status": st, "runId": rid} for k, st, rid in self.children]}


#: Run statuses that count as failed in a rollup.
FAILED = ("FAILED", "TIMED_OUT", "ABORTED")
#: The rollup's states, in the order counts are given.
ROLLUP = ("PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED")


def iso_ms(ms: int | None) -> str | None:
    """Milliseconds since the epoch as ISO 8601 UTC."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


def _rollup(status: str, children: tuple[tuple[str, str, str], ...], cancelled: bool) -> str:
    if status == "HELD":
        return "CANCELLED" if cancelled else "PENDING"
    if status in ("PENDING", "RUNNING"):
        return status
    if status in FAILED:
        return "CANCELLED" if cancelled and status == "ABORTED" else "FAILED"
    kids = {c[1] for c in children}
    if kids & set(FAILED):
        return "FAILED"
    if kids & {"PENDING", "RUNNING"}:
        return "RUNNING"
    return "SUCCEEDED"


@dataclass(frozen=True)
class Backfill:
    """A recorded backfill and the state of each of its dates."""

    id: str
    pipeline: str
    date_from: str
    date_to: str
    downstream: bool
    max_parallel: int
    dates: tuple[DateState, ...]
    created_ms: int = 0
    #: ``(by, reason, at ms)`` when ``dpc backfill cancel`` cancelled it.
    cancelled: tuple[str, str, int] | None = None

    def counts(self) -> dict[str, int]:
        """How many dates are in each rollup state (children included)."""
        out: dict[str, int] = {}
        for d in self.dates:
            out[d.rollup] = out.get(d.rollup, 0) + 1
        return out

    def rollup_counts(self) -> dict[str, int]:
        """``pending, running, succeeded, failed, cancelled``: every state, 0 included."""
        found = self.counts()
        return {s.lower(): found.get(s, 0) for s in ROLLUP}

    def downstream_pipelines(self) -> list[str]:
        """The pipelines that ran downstream of its dates (keys, sorted)."""
        return sorted({c[0] for d in self.dates for c in d.children})

    def line(self) -> str:
        """``listings 2026-11-24..2026-11-26: 2 SUCCEEDED, 1 RUNNING`` (children
        included: a date whose child failed is FAILED)."""
        order = {s: i for i, s in enumerate(ROLLUP)}
        counts = ", ".join(f"{n} {s}" for s, n in sorted(self.counts().items(),
                                                          key=lambda i: order.get(i[0], 9)))
        flags = (" --downstream" if self.downstream else "") + f", max {self.max_parallel} at once"
        if self.cancelled is not None:
            by, reason, _ = self.cancelled
            flags += f", CANCELLED by {by}" + (f" ({reason})" if reason else "")
        return f"{self.pipeline} {self.date_from}..{self.date_to}{flags}: {counts}"

    def to_dict(self) -> dict[str, Any]:
        """JSON shape (``dpc backfill list``, ``dpc local status``)."""
        return {"id": self.id, "pipeline": self.pipeline, "from": self.date_from,
                "to": self.date_to, "downstream": self.downstream,
                "maxParallel": self.max_parallel, "created": iso_ms(self.created_ms),
                "downstreamPipelines": self.downstream_pipelines(),
                "counts": self.rollup_counts(),
                "cancelled": None if self.cancelled is None else {
                    "by": self.cancelled[0], "reason": self.cancelled[1],
                    "at": iso_ms(self.cancelled[2])},
                "dates": [d.to_dict() for d in self.dates]}


def _date_states(conn: sqlite3.Connection, bid: str) -> Iterator[DateState]:
    for day, attempt, arn, status, run_id in conn.execute(
            "SELECT d.date, d.attempt, d.arn, r.status, r.run_id FROM lr_backfill_dates d "
            "LEFT JOIN lr_runs r ON r.arn = d.arn WHERE d.backfill = ? ORDER BY d.date", (bid,)):
        yield DateState(day, attempt, arn, status or "HELD", run_id)


#: How many generations below a date's run its children are followed.
MAX_DEPTH = 64


def _descendants(conn: sqlite3.Connection, own: list[DateState]
                 ) -> dict[str, tuple[tuple[str, str, str], ...]]:
    """ARN of each date's run -> the latest run of each pipeline downstream of it (a run
    whose parents name it, and so on), in one read of the runs created since."""
    arns = [d.arn for d in own if d.arn]
    if not arns:
        return {}
    since = conn.execute(
        f"SELECT MIN(created_ms) FROM lr_runs WHERE arn IN ({','.join('?' * len(arns))})",
        arns).fetchone()[0]
    below: dict[str, list[tuple[str, str, str, str, int]]] = {}
    for arn, key, status, run_id, parents, created in conn.execute(
            "SELECT arn, pipeline, status, run_id, parents, created_ms FROM lr_runs WHERE "
            "created_ms >= ? AND parents != '[]'", (since or 0,)):
        for p in json.loads(parents or "[]"):
            parent = p.get("executionArn") if isinstance(p, dict) else None
            if isinstance(parent, str):
                below.setdefault(parent, []).append((arn, key, status, run_id, created))
    out: dict[str, tuple[tuple[str, str, str], ...]] = {}
    for top in arns:
        latest: dict[str, tuple[int, str, str]] = {}
        seen = {top}
        frontier = [top]
        for _ in range(MAX_DEPTH):
            nxt = []
            for parent in frontier:
                for arn, key, status, run_id, created in below.get(parent, ()):
                    if arn in seen:
                        continue
                    seen.add(arn)
                    nxt.append(arn)
                    if key not in latest or latest[key][0] <= created:
                        latest[key] = (created, status, run_id)
            if not nxt:
                break
            frontier = nxt
        out[top] = tuple((k, st, rid) for k, (_, st, rid) in sorted(latest.items()))
    return out


def get(conn: sqlite3.Connection, bid: str) -> Backfill | None:
    """A recorded backfill by id, each date rolled up with its children's outcome."""
    cancel = ", cancelled_ms, cancelled_by, cancel_reason" if _has_cancel(conn) else ""
    row = conn.execute("SELECT id, pipeline, date_from, date_to, downstream, max_parallel, "
                       f"created_ms{cancel} FROM lr_backfills WHERE id = ?", (bid,)).fetchone()
    if row is None:
        return None
    cancelled = (row[8], row[9] or "", int(row[7])) if cancel and row[7] is not None else None
    own = list(_date_states(conn, bid))
    below = _descendants(conn, own)
    dates = []
    for d in own:
        children = below.get(d.arn or "", ())
        dates.append(DateState(d.date, d.attempt, d.arn, d.status, d.run_id,
                               _rollup(d.status, children, cancelled is not None), children))
    return Backfill(row[0], row[1], row[2], row[3], bool(row[4]), row[5], tuple(dates),
                    int(row[6]), cancelled)


def list_backfills(conn: sqlite3.Connection) -> list[Backfill]:
    """Every recorded backfill, oldest first (none in a state from before backfills)."""
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'lr_backfills'").fetchone() is None:
        return []
    ids = [r[0] for r in conn.execute("SELECT id FROM lr_backfills ORDER BY created_ms, id")]
    return [b for b in (get(conn, i) for i in ids) if b is not None]


def record(conn: sqlite3.Connection, pipeline: str, days: list[str], downstream: bool,
           max_parallel: int) -> Backfill:
    """Record (or resume) a backfill, in the caller's transaction: each date not done and
    not under way is held for the runtime to start. A date that already has a succeeded
    run of the pipeline (a schedule's, a rerun's) counts as done."""
    bid = backfill_id(pipeline, days[0], days[-1], downstream)
    conn.execute("INSERT INTO lr_backfills (id, pipeline, date_from, date_to, downstream, "
                 "max_parallel, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO "
                 "UPDATE SET max_parallel = excluded.max_parallel"
                 + (", cancelled_ms = NULL, cancelled_by = NULL, cancel_reason = NULL"
                    if _has_cancel(conn) else ""),
                 (bid, pipeline, days[0], days[-1], int(downstream), max_parallel, now_ms()))
    known = {d.date: d for d in _date_states(conn, bid)}
    for day in days:
        seen = known.get(day)
        if seen is None:
            conn.execute("INSERT INTO lr_backfill_dates (backfill, date, arn) VALUES (?, ?, ?)",
                         (bid, day, _existing_run(conn, pipeline, day, downstream)))
        elif seen.status in ("FAILED", "TIMED_OUT", "ABORTED"):
            conn.execute("UPDATE lr_backfill_dates SET arn = NULL, attempt = attempt + 1 "
                         "WHERE backfill = ? AND date = ?", (bid, day))
    found = get(conn, bid)
    assert found is not None
    return found


def _existing_run(conn: sqlite3.Connection, pipeline: str, day: str,
                  downstream: bool) -> str | None:
    """The run of ``pipeline`` for ``day`` that a backfill takes as its own instead of
    starting another: one pending or running (for ``--downstream``, one that re-runs its
    children too), else the latest that succeeded."""
    row = conn.execute(
        "SELECT arn FROM lr_runs WHERE pipeline = ? AND logical_date = ? AND (status = "
        "'SUCCEEDED' OR (status IN ('PENDING', 'RUNNING') AND downstream >= ?)) "
        "ORDER BY status = 'SUCCEEDED', created_ms DESC LIMIT 1",
        (pipeline, day, int(downstream))).fetchone()
    return None if row is None else str(row[0])


def release(conn: sqlite3.Connection, queue_run: QueueRun) -> list[str]:
    """The runtime's side, in its transaction: turn held dates into PENDING runs while
    fewer than each backfill's ``max_parallel`` of its runs are pending or running. Returns
    the ARNs queued."""
    queued: list[str] = []
    for bid, pipeline, downstream, limit in conn.execute(
            "SELECT id, pipeline, downstream, max_parallel FROM lr_backfills b WHERE "
            "b.cancelled_ms IS NULL AND EXISTS (SELECT 1 FROM lr_backfill_dates d WHERE "
            "d.backfill = b.id AND d.arn IS NULL)").fetchall():
        active = conn.execute(
            "SELECT COUNT(*) FROM lr_backfill_dates d JOIN lr_runs r ON r.arn = d.arn WHERE "
            "d.backfill = ? AND r.status IN ('PENDING', 'RUNNING')", (bid,)).fetchone()[0]
        free = max(0, int(limit) - int(active))
        if not free:
            continue
        for day, attempt in conn.execute(
                "SELECT date, attempt FROM lr_backfill_dates WHERE backfill = ? AND arn IS NULL "
                "ORDER BY date LIMIT ?", (bid, free)).fetchall():
            arn = _existing_run(conn, pipeline, day, bool(downstream))
            if arn is not None:
                # Another backfill (or a schedule, a rerun) runs or ran this date already.
                conn.execute("UPDATE lr_backfill_dates SET arn = ? WHERE backfill = ? AND "
                             "date = ?", (arn, bid, day))
                continue
            run_id = f"backfill-{day}-{bid[:6]}-a{attempt}"
            arn = queue_run(pipeline, run_id, day, bool(downstream))
            if arn is None:  # the same attempt was queued before (a crash in between)
                arn = conn.execute("SELECT arn FROM lr_runs WHERE run_id = ? AND pipeline = ?",
                                   (run_id, pipeline)).fetchone()[0]
            else:
                queued.append(arn)
            conn.execute("UPDATE lr_backfill_dates SET arn = ? WHERE backfill = ? AND date = ?",
                         (arn, bid, day))
    return queued


def held(conn: sqlite3.Connection) -> int:
    """How many dates of all backfills are still held (the runtime is not idle)."""
    return int(conn.execute(
        "SELECT COUNT(*) FROM lr_backfill_dates d JOIN lr_backfills b ON b.id = d.backfill "
        "WHERE d.arn IS NULL AND b.cancelled_ms IS NULL").fetchone()[0])


def find(conn: sqlite3.Connection, ident: str) -> Backfill:
    """A backfill by id or unique id prefix (``dpc backfill list`` shows the ids)."""
    ids = [r[0] for r in conn.execute("SELECT id FROM lr_backfills WHERE id LIKE ? "
                                      "ORDER BY id", (ident.replace("%", "") + "%",))]
    if len(ids) != 1 or not ident:
        raise DpcError(f"no backfill {ident!r}; `dpc backfill list` shows them" if not ids
                       else f"{ident!r} matches {len(ids)} backfills; give more of the id")
    found = get(conn, ids[0])
    assert found is not None
    return found


def cancel(conn: sqlite3.Connection, bid: str, by: str, reason: str) -> tuple[int, list[str]]:
    """Record the cancel of a backfill, in the caller's transaction: its dates not yet
    started are dropped (held no more, shown CANCELLED), and an operator's abort is
    requested (:mod:`dpc_core.local.operator`) for each of its runs still pending or
    running, children included. Returns (dates dropped, ARNs to abort)."""
    from dpc_core.local import operator

    conn.execute("UPDATE lr_backfills SET cancelled_ms = COALESCE(cancelled_ms, ?), "
                 "cancelled_by = COALESCE(cancelled_by, ?), cancel_reason = "
                 "COALESCE(cancel_reason, ?) WHERE id = ?", (now_ms(), by[:100], reason[:500],
                                                             bid))
    found = get(conn, bid)
    assert found is not None
    dropped = sum(1 for d in found.dates if d.status == "HELD")
    arns: list[str] = []
    below = _descendants(conn, list(found.dates))
    for d in found.dates:
        if d.arn and d.status in ("PENDING", "RUNNING"):
            arns.append(d.arn)
    live = sorted({(key, rid) for kids in below.values() for key, st, rid in kids
                   if st in ("PENDING", "RUNNING")})
    for key, rid in live:
        arns.extend(r[0] for r in conn.execute(
            "SELECT arn FROM lr_runs WHERE pipeline = ? AND run_id = ? AND status IN "
            "('PENDING', 'RUNNING')", (key, rid)))
    why = f"backfill {bid} cancelled" + (f": {reason}" if reason else "")
    for arn in arns:
        operator.request(conn, arn, by, why)
    return dropped, arns


#: ``(pipeline key, run id, logical date, parents, downstream) -> ARN`` (None: it exists).
Rerun = Callable[[str, str, str, "list[dict[str, Any]]", bool], "str | None"]

_AGAIN = re.compile(r"-again\d+$")


def _of_backfill(conn: sqlite3.Connection, pipeline: str, reason: str,
                parents: str) -> str | None:
    """The pipeline of the backfill a run belongs to (its own, or one upstream through
    the parents that caused it, at most 64 generations up); None for other runs."""
    if reason == "backfill":
        return pipeline
    frontier = [p.get("executionArn") for p in json.loads(parents or "[]")]
    seen: set[str] = set()
    for _ in range(64):
        nxt: list[str] = []
        for arn in frontier:
            if not isinstance(arn, str) or arn in seen:
                continue
            seen.add(arn)
            row = conn.execute("SELECT reason, parents, pipeline FROM lr_runs WHERE arn = ?",
                               (arn,)).fetchone()
            if row is None:
                continue
            if row[0] == "backfill":
                return str(row[2])
            nxt.extend(p.get("executionArn") for p in json.loads(row[1] or "[]"))
        if not nxt:
            return None
        frontier = nxt
    return None


def interrupted(conn: sqlite3.Connection, pipeline: str) -> int:
    """How many runs of backfills of ``pipeline`` (or downstream of them) the last stop
    interrupted and that wait to run again at the next start."""
    return sum(1 for key, reason, parents in conn.execute(
        "SELECT pipeline, reason, parents FROM lr_runs WHERE interrupted = 1").fetchall()
        if _of_backfill(conn, key, reason, parents) == pipeline)


def resume_interrupted(conn: sqlite3.Connection, rerun: Rerun) -> list[str]:
    """At the runtime's start, in its transaction: each run that the last runtime's stop
    interrupted and that belongs to a backfill runs again. A backfill's own run holds its
    date again (a new attempt); a run downstream of it is queued again under a new name,
    with the same parents and logical date (the engine then triggers its own children as
    for any run). A date whose pipeline has run again since is left alone. Returns the ARNs
    queued."""
    queued: list[str] = []
    for arn, run_id, pipeline, day, reason, parents, downstream, created in conn.execute(
            "SELECT arn, run_id, pipeline, logical_date, reason, parents, downstream, "
            "created_ms FROM lr_runs WHERE interrupted = 1 ORDER BY created_ms").fetchall():
        if _of_backfill(conn, pipeline, reason, parents) is None:
            continue
        conn.execute("UPDATE lr_runs SET interrupted = 2 WHERE arn = ?", (arn,))
        if reason == "backfill":
            conn.execute("UPDATE lr_backfill_dates SET arn = NULL, attempt = attempt + 1 "
                         "WHERE arn = ?", (arn,))
            continue
        newer = conn.execute("SELECT 1 FROM lr_runs WHERE pipeline = ? AND logical_date = ? "
                             "AND created_ms > ? AND arn != ? LIMIT 1",
                             (pipeline, day, created, arn)).fetchone()
        if newer is not None:
            continue  # it ran again meanwhile (a rerun, a new trigger)
        match = _AGAIN.search(run_id)
        again = int(match.group(0)[6:]) + 1 if match else 1
        new_id = f"{_AGAIN.sub('', run_id)}-again{again}"
        new = rerun(pipeline, new_id, day, json.loads(parents or "[]"), bool(downstream))
        if new is not None:
            queued.append(new)
    return queued
