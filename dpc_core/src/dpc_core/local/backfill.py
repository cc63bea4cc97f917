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
held again for a new attempt.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta

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
            done = conn.execute("SELECT arn FROM lr_runs WHERE pipeline = ? AND logical_date = ?"
                                " AND status = 'SUCCEEDED' ORDER BY created_ms DESC LIMIT 1",
                                (pipeline, day)).fetchone()
            conn.execute("INSERT INTO lr_backfill_dates (backfill, date, arn) VALUES (?, ?, ?)",
                         (bid, day, done[0] if done else None))
        elif seen.status in ("FAILED", "TIMED_OUT", "ABORTED"):
            conn.execute("UPDATE lr_backfill_dates SET arn = NULL, attempt = attempt + 1 "
                         "WHERE backfill = ? AND date = ?", (bid, day))
    found = get(conn, bid)
    assert found is not None
    return found


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
