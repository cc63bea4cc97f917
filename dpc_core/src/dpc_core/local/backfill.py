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

import hashlib
import json
import re
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
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


def init(conn: sqlite3.Connection) -> None:
    """Create the backfill tables (idempotent; not inside a transaction)."""
    conn.executescript(SCHEMA)


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
    status: str  # HELD, PENDING, RUNNING, SUCCEEDED, FAILED, ...
    run_id: str | None


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

    def counts(self) -> dict[str, int]:
        """How many dates are in each state."""
        out: dict[str, int] = {}
        for d in self.dates:
            out[d.status] = out.get(d.status, 0) + 1
        return out

    def line(self) -> str:
        """``listings 2026-11-24..2026-11-26: 2 SUCCEEDED, 1 RUNNING``."""
        counts = ", ".join(f"{n} {s}" for s, n in sorted(self.counts().items()))
        flags = (" --downstream" if self.downstream else "") + f", max {self.max_parallel} at once"
        return f"{self.pipeline} {self.date_from}..{self.date_to}{flags}: {counts}"


def _date_states(conn: sqlite3.Connection, bid: str) -> Iterator[DateState]:
    for day, attempt, arn, status, run_id in conn.execute(
            "SELECT d.date, d.attempt, d.arn, r.status, r.run_id FROM lr_backfill_dates d "
            "LEFT JOIN lr_runs r ON r.arn = d.arn WHERE d.backfill = ? ORDER BY d.date", (bid,)):
        yield DateState(day, attempt, arn, status or "HELD", run_id)


def get(conn: sqlite3.Connection, bid: str) -> Backfill | None:
    """A recorded backfill by id."""
    row = conn.execute("SELECT id, pipeline, date_from, date_to, downstream, max_parallel "
                       "FROM lr_backfills WHERE id = ?", (bid,)).fetchone()
    if row is None:
        return None
    return Backfill(row[0], row[1], row[2], row[3], bool(row[4]), row[5],
                    tuple(_date_states(conn, bid)))


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
                 "UPDATE SET max_parallel = excluded.max_parallel",
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
            "SELECT id, pipeline, downstream, max_parallel FROM lr_backfills b WHERE EXISTS "
            "(SELECT 1 FROM lr_backfill_dates d WHERE d.backfill = b.id AND d.arn IS NULL)"
            ).fetchall():
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
    return int(conn.execute("SELECT COUNT(*) FROM lr_backfill_dates WHERE arn IS NULL")
               .fetchone()[0])


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
