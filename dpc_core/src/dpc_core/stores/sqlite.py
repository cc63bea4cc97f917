"""SQLite store for the trigger engine (local runtime and ``dpc simulate``).

WAL mode; every event is handled in one ``BEGIN IMMEDIATE`` transaction, so the
record, the window update and the claim commit together or not at all, and two
processes on one file never claim the same trigger.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Container, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from types import TracebackType

from dpc_core.store import (
    Claim,
    PipelineSpec,
    Recorded,
    RunRecord,
    Slot,
    WindowState,
    spec_from_json,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS pipelines (
    key TEXT PRIMARY KEY, spec TEXT NOT NULL, updated_at REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS registry_version (
    id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL
);
INSERT OR IGNORE INTO registry_version (id, version) VALUES (1, 0);
CREATE TABLE IF NOT EXISTS edges (
    parent TEXT NOT NULL, child TEXT NOT NULL, PRIMARY KEY (parent, child)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS edges_by_child ON edges (child);
CREATE TABLE IF NOT EXISTS runs (
    arn TEXT PRIMARY KEY, pipeline TEXT NOT NULL, status TEXT NOT NULL, rc INTEGER NOT NULL,
    start_ms INTEGER NOT NULL, logical TEXT, stop_ms INTEGER, error TEXT,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_pipeline ON runs (pipeline, start_ms);
CREATE TABLE IF NOT EXISTS windows (
    child TEXT NOT NULL, window TEXT NOT NULL, slots TEXT NOT NULL, version INTEGER NOT NULL,
    generation INTEGER NOT NULL, last_runs TEXT NOT NULL, PRIMARY KEY (child, window)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS claims (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, child TEXT NOT NULL, window TEXT NOT NULL,
    generation INTEGER NOT NULL, execution_name TEXT NOT NULL, parents TEXT NOT NULL,
    created_at REAL NOT NULL, downstream INTEGER NOT NULL DEFAULT 0,
    UNIQUE (child, window, generation)
);
"""


# Window slots are written on nearly every event: a flat text form (records separated by
# RS, fields by US; neither can occur in pipeline keys, ARNs or statuses) costs a fraction
# of JSON to write and read.
_RS, _US = "\x1e", "\x1f"


def encode_slots(slots: dict[str, Slot]) -> str:
    """The stored form of a window's slots."""
    return _RS.join(f"{k}{_US}{s.arn}{_US}{s.start_ms}{_US}{s.status}{_US}{s.redrive_count}"
                    for k, s in slots.items())


def decode_slots(text: str) -> dict[str, Slot]:
    """Inverse of :func:`encode_slots`."""
    out: dict[str, Slot] = {}
    for record in text.split(_RS) if text else ():
        key, arn, start, status, rc = record.split(_US)
        out[key] = Slot(arn, int(start), status, int(rc))
    return out


def connect(path: str | Path) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, busy timeout."""
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False,
                           timeout=30.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    # 64 MiB of page cache (the default 2 MiB makes the per-event cost grow with the
    # size of the organisation once the registry and windows outgrow it).
    conn.execute("PRAGMA cache_size=-65536")
    # Checkpoint every ~80 MiB of WAL rather than every 4 MiB: with a large registry
    # each batch touches many pages, and frequent checkpoints made the cost per event grow
    # with the organisation.
    conn.execute("PRAGMA wal_autocheckpoint=20000")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


class _Transaction:
    """The store's transaction context (a plain class: it is entered several times per
    event, and a generator-based context manager costs more than the SQL it wraps)."""

    __slots__ = ("store",)

    def __init__(self, store: SqliteStore) -> None:
        self.store = store

    def __enter__(self) -> None:
        s = self.store
        s._lock.acquire()
        if s._depth == 0 and not s.conn.in_transaction:
            try:
                s.conn.execute("BEGIN IMMEDIATE")
            except BaseException:
                s._lock.release()
                raise
            s._began = True
        s._depth += 1

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        s = self.store
        try:
            s._depth -= 1
            if s._depth == 0 and s._began:
                s._began = False
                if exc_type is None:
                    if s._dirty:
                        s._flush()
                    s.conn.execute("COMMIT")
                else:
                    s.conn.execute("ROLLBACK")
                    s._forget()
        finally:
            s._lock.release()


class SqliteStore:
    """The trigger store on one SQLite connection (one per thread or process).

    ``exclusive=True`` promises that no other connection writes the engine's tables
    while this store is open (``dpc simulate``; the local runtime, which holds the
    workspace lock). Runs and windows are then also kept in memory, write-through, so
    the event path issues writes only. Several workers on one file must leave it False.
    """

    def __init__(self, conn: sqlite3.Connection | str | Path = ":memory:", *,
                 exclusive: bool = False) -> None:
        self.conn = conn if isinstance(conn, sqlite3.Connection) else connect(conn)
        self.exclusive = exclusive
        self._runs_cache: dict[str, RunRecord] = {}
        self._win_cache: dict[tuple[str, str], WindowState] = {}
        self._depth = 0
        self._lock = threading.RLock()
        # lookup() results, valid while registry_version is unchanged (any connection that
        # registers or unregisters bumps it), so the event path reads one integer instead
        # of the registry rows.
        self._lookup_cache: dict[str, tuple[PipelineSpec, list[PipelineSpec]] | None] = {}
        self._lookup_version = -1
        self._began = False
        self._tx = _Transaction(self)
        self.conn.executescript(SCHEMA)
        # Exclusive mode writes behind: state changes are kept in memory and written with
        # one executemany per table just before the transaction commits (same atomicity,
        # far fewer statements). On a fresh database the caches are then complete, so a
        # cache miss means "absent" and costs no read.
        self._dirty = False
        self._dirty_runs: dict[str, RunRecord] = {}
        self._dirty_windows: set[tuple[str, str]] = set()
        self._dirty_claims: list[tuple[str, str, int, str, str, float, int]] = []
        self._complete = exclusive and not self.conn.execute(
            "SELECT EXISTS (SELECT 1 FROM runs) OR EXISTS (SELECT 1 FROM windows)").fetchone()[0]

    # -- transactions -------------------------------------------------------------

    def transaction(self) -> _Transaction:
        """One ``BEGIN IMMEDIATE`` transaction; nested calls join the outer one."""
        return self._tx

    # -- registry -----------------------------------------------------------------

    def _spec(self, text: str) -> PipelineSpec:
        return spec_from_json(text)

    def put_pipeline(self, spec: PipelineSpec) -> None:
        """Register or replace a pipeline and its edges."""
        with self.transaction():
            self.conn.execute(
                "INSERT INTO pipelines (key, spec, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET spec = excluded.spec, "
                "updated_at = excluded.updated_at",
                (spec.key, spec.to_json(), time.time()))
            self.conn.execute("DELETE FROM edges WHERE child = ?", (spec.key,))
            self.conn.executemany("INSERT OR IGNORE INTO edges (parent, child) VALUES (?, ?)",
                                  [(p, spec.key) for p in spec.parents])
            self._bump()

    def put_pipelines(self, specs: Sequence[PipelineSpec]) -> None:
        """:meth:`put_pipeline` for many at once: one statement per table (10,000 one by
        one took over a second of a first ``dpc local up``)."""
        latest = {spec.key: spec for spec in specs}  # a key given twice: the last one wins
        with self.transaction():
            now = time.time()
            self.conn.executemany(
                "INSERT INTO pipelines (key, spec, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET spec = excluded.spec, "
                "updated_at = excluded.updated_at",
                [(key, spec.to_json(), now) for key, spec in latest.items()])
            self.conn.executemany("DELETE FROM edges WHERE child = ?", [(k,) for k in latest])
            self.conn.executemany("INSERT OR IGNORE INTO edges (parent, child) VALUES (?, ?)",
                                  [(p, key) for key, spec in latest.items()
                                   for p in spec.parents])
            self._bump()

    def pipeline_parents(self, skip: Container[str] = ()) -> dict[str, tuple[str, ...]]:
        """Every registered pipeline's parents by key, in key order (what
        :meth:`pipelines` gives, without decoding the specs of the keys in ``skip``: those
        map to ``()``, for a caller about to replace them)."""
        rows = self.conn.execute("SELECT key, spec FROM pipelines ORDER BY key").fetchall()
        return {key: () if key in skip else self._spec(text).parents for key, text in rows}

    def delete_pipeline(self, account: str, name: str) -> bool:
        """Unregister a pipeline and its edges as a child."""
        key = f"{account}/{name}"
        with self.transaction():
            cur = self.conn.execute("DELETE FROM pipelines WHERE key = ?", (key,))
            self.conn.execute("DELETE FROM edges WHERE child = ?", (key,))
            self._bump()
        return cur.rowcount > 0

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        """Inside a transaction: a block whose writes are all undone, those kept in memory
        included, when it raises; what the transaction wrote before it is kept."""
        with self.transaction():
            if self._dirty:
                self._flush()  # so that undoing the block undoes nothing from before it
            self.conn.execute("SAVEPOINT dpc_block")
            try:
                yield
            except BaseException:
                self.conn.execute("ROLLBACK TO dpc_block")
                self.conn.execute("RELEASE dpc_block")
                self._forget()
                raise
            self.conn.execute("RELEASE dpc_block")

    def _forget(self) -> None:
        """Drop every cache (after a rollback the database no longer matches them)."""
        self._lookup_cache.clear()
        self._lookup_version = -1
        self._runs_cache.clear()
        self._win_cache.clear()
        self._dirty_runs.clear()
        self._dirty_windows.clear()
        self._dirty_claims.clear()
        self._dirty = False
        self._complete = False

    def _flush(self) -> None:
        """Write what exclusive mode kept in memory (inside the caller's transaction)."""
        now = time.time()
        if self._dirty_runs:
            self.conn.executemany(
                "INSERT INTO runs (arn, pipeline, status, rc, start_ms, logical, stop_ms, error,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (arn) DO UPDATE SET "
                "status = excluded.status, rc = excluded.rc, stop_ms = excluded.stop_ms, "
                "error = excluded.error, logical = COALESCE(runs.logical, excluded.logical), "
                "updated_at = excluded.updated_at",
                [(r.arn, r.pipeline, r.status, r.redrive_count, r.start_ms, r.logical,
                  r.stop_ms, r.error, now) for r in self._dirty_runs.values()])
        if self._dirty_windows:
            rows = []
            for child, window in self._dirty_windows:
                s = self._win_cache[(child, window)]
                rows.append((child, window, encode_slots(s.slots), s.version, s.generation,
                             json.dumps(list(s.last_runs))))
            self.conn.executemany(
                "INSERT INTO windows (child, window, slots, version, generation, last_runs) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (child, window) DO UPDATE SET "
                "slots = excluded.slots, version = excluded.version, "
                "generation = excluded.generation, last_runs = excluded.last_runs", rows)
        if self._dirty_claims:
            self.conn.executemany(
                "INSERT INTO claims (child, window, generation, execution_name, parents, "
                "created_at, downstream) VALUES (?, ?, ?, ?, ?, ?, ?)", self._dirty_claims)
        self._dirty_runs.clear()
        self._dirty_windows.clear()
        self._dirty_claims.clear()
        self._dirty = False
        if len(self._runs_cache) > 500_000 or len(self._win_cache) > 200_000:
            self._runs_cache.clear()
            self._win_cache.clear()
            self._complete = False

    def _bump(self) -> None:
        self.conn.execute("UPDATE registry_version SET version = version + 1 WHERE id = 1")
        self._lookup_cache.clear()

    def get_pipeline(self, key: str) -> PipelineSpec | None:
        """The spec of ``account/name``."""
        row = self.conn.execute("SELECT spec FROM pipelines WHERE key = ?", (key,)).fetchone()
        return self._spec(row[0]) if row else None

    def pipelines(self) -> Iterator[PipelineSpec]:
        """Every registered pipeline, by key."""
        rows = self.conn.execute("SELECT spec FROM pipelines ORDER BY key").fetchall()
        return iter([self._spec(r[0]) for r in rows])

    def lookup(self, key: str) -> tuple[PipelineSpec, list[PipelineSpec]] | None:
        """The pipeline and its children (cached while the registry is unchanged)."""
        if self.exclusive and self._lookup_version != -1:
            version = self._lookup_version  # only this connection registers
        else:
            (version,) = self.conn.execute(
                "SELECT version FROM registry_version WHERE id = 1").fetchone()
        if version != self._lookup_version:
            self._lookup_cache.clear()
            self._lookup_version = version
        if key in self._lookup_cache:
            return self._lookup_cache[key]
        found = self._lookup(key)
        if len(self._lookup_cache) > 100_000:
            self._lookup_cache.clear()
        self._lookup_cache[key] = found
        return found

    def _lookup(self, key: str) -> tuple[PipelineSpec, list[PipelineSpec]] | None:
        me = self.get_pipeline(key)
        if me is None:
            return None
        rows = self.conn.execute(
            "SELECT p.spec FROM edges e JOIN pipelines p ON p.key = e.child "
            "WHERE e.parent = ? ORDER BY e.child", (key,)).fetchall()
        return me, [self._spec(r[0]) for r in rows]

    # -- run log ------------------------------------------------------------------

    def record_run(self, run: RunRecord) -> Recorded:
        """Insert or advance a run; duplicates and stale statuses change nothing."""
        return self.record(run)[0]

    def record(self, run: RunRecord) -> tuple[Recorded, RunRecord | None]:
        """:meth:`record_run`, and the run as it was stored before (None: first seen)."""
        if self.exclusive:
            return self._record_behind(run)
        with self.transaction():
            # Most first sightings are new runs: try the insert first (one statement).
            cur = self.conn.execute(
                "INSERT INTO runs (arn, pipeline, status, rc, start_ms, logical, stop_ms, "
                "error, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (arn) DO NOTHING",
                (run.arn, run.pipeline, run.status, run.redrive_count, run.start_ms,
                 run.logical, run.stop_ms, run.error, time.time()))
            if cur.rowcount == 1:
                return Recorded.NEW, None
            prior = self._run(self.conn.execute(
                "SELECT arn, pipeline, status, rc, start_ms, logical, stop_ms, error FROM runs "
                "WHERE arn = ?", (run.arn,)).fetchone())
            if (prior.status, prior.redrive_count) == (run.status, run.redrive_count):
                return Recorded.DUPLICATE, prior
            if not run.newer_than(prior.status, prior.redrive_count):
                return Recorded.STALE, prior
            self.conn.execute(
                "UPDATE runs SET status = ?, rc = ?, stop_ms = ?, error = ?, "
                "logical = COALESCE(logical, ?), updated_at = ? WHERE arn = ?",
                (run.status, run.redrive_count, run.stop_ms, run.error, run.logical,
                 time.time(), run.arn))
            return Recorded.NEW, prior

    def _record_behind(self, run: RunRecord) -> tuple[Recorded, RunRecord | None]:
        with self.transaction():
            # The cache holds each run's record as written (no copy: records are frozen).
            prior = self._runs_cache.get(run.arn)
            if prior is None and not self._complete:
                row = self.conn.execute(
                    "SELECT arn, pipeline, status, rc, start_ms, logical, stop_ms, error "
                    "FROM runs WHERE arn = ?", (run.arn,)).fetchone()
                prior = self._run(row) if row else None
            if prior is not None:
                if (prior.status, prior.redrive_count) == (run.status, run.redrive_count):
                    self._runs_cache[run.arn] = prior
                    return Recorded.DUPLICATE, prior
                if not run.newer_than(prior.status, prior.redrive_count):
                    self._runs_cache[run.arn] = prior
                    return Recorded.STALE, prior
                # The first start and logical date stick (also when the row is written
                # later in one batch with an earlier status of the same run).
                logical = prior.logical or run.logical
                if (prior.start_ms, logical) != (run.start_ms, run.logical):
                    run = replace(run, start_ms=prior.start_ms, logical=logical)
            self._runs_cache[run.arn] = run
            self._dirty_runs[run.arn] = run
            self._dirty = True
            return Recorded.NEW, prior

    @staticmethod
    def _run(row: tuple[object, ...]) -> RunRecord:
        arn, pipeline, status, rc, start, logical, stop, error = row
        return RunRecord(str(arn), str(pipeline), str(status), int(rc),  # type: ignore[call-overload]
                         int(start), logical, stop, error)  # type: ignore[call-overload,arg-type]

    def get_run(self, arn: str) -> RunRecord | None:
        """One run by ARN."""
        if self._dirty:
            with self.transaction():
                self._flush()
        row = self.conn.execute(
            "SELECT arn, pipeline, status, rc, start_ms, logical, stop_ms, error FROM runs "
            "WHERE arn = ?", (arn,)).fetchone()
        return self._run(row) if row else None

    def runs_of(self, key: str, since_ms: int = 0) -> list[RunRecord]:
        """Runs of one pipeline, oldest first."""
        if self._dirty:
            with self.transaction():
                self._flush()
        rows = self.conn.execute(
            "SELECT arn, pipeline, status, rc, start_ms, logical, stop_ms, error FROM runs "
            "WHERE pipeline = ? AND start_ms >= ? ORDER BY start_ms, arn",
            (key, since_ms)).fetchall()
        return [self._run(r) for r in rows]

    # -- windows and claims -------------------------------------------------------

    def window_state(self, child: str, window: str) -> WindowState:
        """The stored state of a child window."""
        if self.exclusive:
            cached = self._win_cache.get((child, window))
            if cached is not None:
                return cached
            if self._complete:
                return WindowState()
        row = self.conn.execute(
            "SELECT slots, version, generation, last_runs FROM windows "
            "WHERE child = ? AND window = ?", (child, window)).fetchone()
        if row is None:
            return WindowState()
        slots = decode_slots(row[0])
        state = WindowState(slots, int(row[1]), int(row[2]), tuple(json.loads(row[3])))
        self._remember(child, window, state)
        return state

    def _remember(self, child: str, window: str, state: WindowState) -> None:
        if self.exclusive:
            if len(self._win_cache) > 200_000:
                self._win_cache.clear()
            self._win_cache[(child, window)] = state

    def update_slot(self, child: str, window: str, parent: str, slot: Slot) -> WindowState:
        """Advance the parent's slot if ``slot`` supersedes it; return the window state."""
        if self.exclusive:
            with self.transaction():
                state = self.window_state(child, window)
                old = state.slots.get(parent)
                if old is not None and not old.superseded_by(slot):
                    return state
                new = WindowState({**state.slots, parent: slot}, state.version + 1,
                                  state.generation, state.last_runs)
                self._win_cache[(child, window)] = new
                self._dirty_windows.add((child, window))
                self._dirty = True
                return new
        with self.transaction():
            if self.exclusive and (child, window) not in self._win_cache:
                # A window seen for the first time is usually new: insert it directly.
                first = WindowState({parent: slot}, 1, 0, ())
                cur = self.conn.execute(
                    "INSERT INTO windows (child, window, slots, version, generation, last_runs)"
                    " VALUES (?, ?, ?, 1, 0, '[]') ON CONFLICT (child, window) DO NOTHING",
                    (child, window, encode_slots(first.slots)))
                if cur.rowcount == 1:
                    self._remember(child, window, first)
                    return first
            state = self.window_state(child, window)
            old = state.slots.get(parent)
            if old is not None and not old.superseded_by(slot):
                return state
            slots = {**state.slots, parent: slot}
            new = WindowState(slots, state.version + 1, state.generation, state.last_runs)
            encoded = encode_slots(slots)
            if state.version:  # the row exists (version 0 is "never written")
                self.conn.execute(
                    "UPDATE windows SET slots = ?, version = ? WHERE child = ? AND window = ?",
                    (encoded, new.version, child, window))
            else:
                self.conn.execute(
                    "INSERT INTO windows (child, window, slots, version, generation, last_runs)"
                    " VALUES (?, ?, ?, ?, ?, '[]')", (child, window, encoded, new.version,
                                                     new.generation))
            self._remember(child, window, new)
            return new

    def replace_slot(self, child: str, window: str, parent: str, arn: str,
                     slot: Slot | None) -> WindowState:
        """Replace (or remove) ``parent``'s slot iff it holds run ``arn``; bump the version."""
        with self.transaction():
            state = self.window_state(child, window)
            old = state.slots.get(parent)
            if old is None or old.arn != arn:
                return state
            slots = {k: v for k, v in state.slots.items() if k != parent}
            if slot is not None:
                slots[parent] = slot
            new = WindowState(slots, state.version + 1, state.generation, state.last_runs)
            if self.exclusive:
                self._win_cache[(child, window)] = new
                self._dirty_windows.add((child, window))
                self._dirty = True
                return new
            self.conn.execute(
                "UPDATE windows SET slots = ?, version = ? WHERE child = ? AND window = ?",
                (encode_slots(slots), new.version, child, window))
            self._remember(child, window, new)
            return new

    def claim(self, child: str, window: str, seen: WindowState, claim: Claim) -> bool:
        """Compare-and-set the window's generation; record the claim."""
        last_runs = sorted({p["executionArn"] for p in claim.parents})
        if self.exclusive:
            with self.transaction():
                current = self.window_state(child, window)
                if current.version == 0 or (current.version, current.generation) != (
                        seen.version, seen.generation):
                    return False  # never written, or moved since it was seen
                self._win_cache[(child, window)] = WindowState(
                    current.slots, current.version, claim.generation, tuple(last_runs))
                self._dirty_windows.add((child, window))
                self._dirty_claims.append((child, window, claim.generation, claim.execution_name,
                                           json.dumps(list(claim.parents)), time.time(),
                                           int(claim.downstream)))
                self._dirty = True
                return True
        with self.transaction():
            cur = self.conn.execute(
                "UPDATE windows SET generation = ?, last_runs = ? WHERE child = ? AND window = ? "
                "AND version = ? AND generation = ?",
                (claim.generation, json.dumps(last_runs), child, window, seen.version,
                 seen.generation))
            if cur.rowcount != 1:
                self._win_cache.pop((child, window), None)
                return False
            self._remember(child, window, WindowState(seen.slots, seen.version,
                                                      claim.generation, tuple(last_runs)))
            self.conn.execute(
                "INSERT INTO claims (child, window, generation, execution_name, parents, "
                "created_at, downstream) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (child, window, claim.generation, claim.execution_name,
                 json.dumps(list(claim.parents)), time.time(), int(claim.downstream)))
            return True

    def claims(self, child: str | None = None) -> list[Claim]:
        """Claims in the order they were made."""
        if self._dirty:
            with self.transaction():
                self._flush()
        sql = ("SELECT child, window, generation, execution_name, parents, downstream "
               "FROM claims")
        args: tuple[str, ...] = ()
        if child is not None:
            sql += " WHERE child = ?"
            args = (child,)
        rows = self.conn.execute(sql + " ORDER BY seq", args).fetchall()
        return [Claim(r[0], r[1], int(r[2]), r[3], tuple(json.loads(r[4])), bool(r[5]))
                for r in rows]

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()
