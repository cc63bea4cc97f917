"""The local runtime's state: runs, steps, an outbox of events, schedules (SQLite).

The engine's own tables (registry, run log, windows, claims) live in the same file,
so a state change, the events it causes and the engine's decisions commit together.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dpc_core.errors import DpcError

SCHEMA = """
CREATE TABLE IF NOT EXISTS lr_runs (
    arn TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    pipeline TEXT NOT NULL,
    status TEXT NOT NULL,
    logical_date TEXT NOT NULL,
    reason TEXT NOT NULL,
    parents TEXT NOT NULL DEFAULT '[]',
    downstream INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL,
    start_ms INTEGER,
    stop_ms INTEGER,
    error TEXT,
    owner_pid INTEGER
);
CREATE INDEX IF NOT EXISTS lr_runs_status ON lr_runs (status);
CREATE INDEX IF NOT EXISTS lr_runs_pipeline ON lr_runs (pipeline, created_ms);
-- The run grid's range query (dpc local grid, the UI's Grid).
CREATE INDEX IF NOT EXISTS lr_runs_logical ON lr_runs (logical_date);
CREATE TABLE IF NOT EXISTS lr_steps (
    arn TEXT NOT NULL,
    idx INTEGER NOT NULL,
    name TEXT NOT NULL,
    type TEXT NOT NULL,
    status TEXT NOT NULL,
    start_ms INTEGER,
    stop_ms INTEGER,
    exit_code INTEGER,
    log_path TEXT,
    pid INTEGER,
    attempt INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (arn, idx)
);
CREATE TABLE IF NOT EXISTS lr_outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    done_ms INTEGER
);
CREATE INDEX IF NOT EXISTS lr_outbox_pending ON lr_outbox (kind, seq) WHERE done_ms IS NULL;
CREATE TABLE IF NOT EXISTS lr_schedules (
    pipeline TEXT PRIMARY KEY,
    last_fire_ms INTEGER NOT NULL
);
-- Items a background thread could not process (an event the engine choked on, a
-- notification that crashed its channel): set aside with the error so the thread goes on
-- with the next item (`dpc local problems`).
CREATE TABLE IF NOT EXISTS lr_problems (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_ms INTEGER NOT NULL,
    source TEXT NOT NULL,
    item TEXT NOT NULL,
    error TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
-- What each pipeline.yaml held when it was last read (by size and mtime), so a restart
-- re-reads only the files that changed (10,000 files take ~30 s to parse and validate).
CREATE TABLE IF NOT EXISTS lr_catalog (
    path TEXT PRIMARY KEY,
    mtime_ns INTEGER NOT NULL,
    size INTEGER NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    blob BLOB NOT NULL,
    meta TEXT NOT NULL
);
DROP TABLE IF EXISTS lr_sources;
"""

REGION = "local"
TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")

# SQLite result codes that are about the state file and its disk, not about the data: the
# same write succeeds once space is freed or the file is writable again.
_STORAGE_CODES = ("SQLITE_FULL", "SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_IOERR",
                  "SQLITE_PERM", "SQLITE_NOTADB")
_STORAGE_TEXT = ("disk is full", "readonly database", "unable to open", "disk I/O error",
                 "read-only file system")


class StateUnavailable(DpcError):
    """The workspace's state database cannot be opened or written (disk full, read-only
    file system or directory, missing permissions)."""


def storage_cause(exc: BaseException | None) -> BaseException | None:
    """The error behind ``exc`` that is about the state file or its disk (full, read-only,
    cannot open, I/O), or None when ``exc`` is about the data. Follows ``__context__``: a
    failed ROLLBACK hides the disk-full error that caused it."""
    for _ in range(8):
        if exc is None:
            return None
        if isinstance(exc, sqlite3.Error):
            name = getattr(exc, "sqlite_errorname", "") or ""
            if name.startswith(_STORAGE_CODES) or any(t in str(exc) for t in _STORAGE_TEXT):
                return exc
        elif isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EROFS, errno.EACCES,
                                                        errno.EPERM, errno.EDQUOT):
            return exc
        exc = exc.__context__
    return None


def unavailable(exc: BaseException, path: Path) -> StateUnavailable:
    """A user error for a storage failure on ``path``: what happened and what to do."""
    text = str(exc)
    name = getattr(exc, "sqlite_errorname", "") or ""
    err = getattr(exc, "errno", None)
    # SQLite often says only "unable to open" or "disk I/O error": ask the file system.
    read_only, full = _disk_facts(path)
    if read_only:
        err = errno.EROFS
    elif full:
        err = errno.ENOSPC
    if err in (errno.ENOSPC, errno.EDQUOT) or (err is None and (
            name == "SQLITE_FULL" or "full" in text)):
        what = (f"the disk holding {path} is full; free space there (or use a workspace on "
                "another disk) and run the command again")
    elif name.startswith(("SQLITE_READONLY", "SQLITE_PERM")) or "read-only" in text \
            or "readonly" in text or err in (errno.EROFS, errno.EACCES, errno.EPERM):
        what = (f"{path} cannot be written (read-only file system or no write permission "
                f"on {path.parent}); make it writable for this user, or use a copy of the "
                "workspace on a writable disk")
    elif name == "SQLITE_CANTOPEN" or "unable to open" in text:
        what = (f"cannot open {path}; {path.parent} must exist and be writable by this user "
                "(SQLite also writes state.db-wal and state.db-shm beside it)")
    else:
        what = f"cannot read or write {path}; check the disk and the file"
    return StateUnavailable(f"state database unavailable: {what} ({type(exc).__name__}: "
                            f"{text})")


def _disk_facts(path: Path) -> tuple[bool, bool]:
    """(read-only, full) for the state file's directory, as the file system says."""
    where = path.parent if path.parent.exists() else path.parent.parent
    try:
        # access() reports a read-only file system (EROFS) even to root.
        read_only = not os.access(where, os.W_OK) or (path.exists()
                                                      and not os.access(path, os.W_OK))
        st = os.statvfs(where)
        full = st.f_bavail == 0 or st.f_favail == 0
    except OSError:
        return False, False
    return read_only, full


@contextlib.contextmanager
def guarded(path: Path) -> Iterator[None]:
    """Turn a storage failure on the state file into :class:`StateUnavailable` (exit 2,
    one clear message) instead of a traceback."""
    try:
        yield
    except (sqlite3.Error, OSError) as exc:
        name = getattr(exc, "sqlite_errorname", "") or ""
        if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
            # Nothing was written to it: the file is left as it is for the user to keep.
            raise StateUnavailable(
                f"state.db at {path} is not a dpc database or is corrupt: {exc}; it was left "
                "untouched: move it aside (the next command starts an empty one) or restore "
                "a copy") from None
        cause = storage_cause(exc)
        if cause is None:
            raise
        raise unavailable(cause, path) from None


def now_ms() -> int:
    """Wall-clock milliseconds."""
    return int(time.time() * 1000)


def execution_arn(account: str, pipeline: str, run_id: str) -> str:
    """The ARN a local run would have on AWS (region ``local``)."""
    return f"arn:aws:states:{REGION}:{account}:execution:{pipeline}:{run_id}"


@dataclass(frozen=True)
class RunRow:
    """One row of lr_runs."""

    arn: str
    run_id: str
    pipeline: str
    status: str
    logical_date: str
    reason: str
    parents: list[dict[str, Any]]
    downstream: bool
    created_ms: int
    start_ms: int | None
    stop_ms: int | None
    error: str | None

    @property
    def account(self) -> str:
        """The run's (simulated) account."""
        return self.pipeline.split("/", 1)[0]

    @property
    def name(self) -> str:
        """The pipeline name."""
        return self.pipeline.split("/", 1)[1]

    @property
    def duration_s(self) -> float | None:
        """Seconds from start to stop, when both are known."""
        if self.start_ms is None or self.stop_ms is None:
            return None
        return (self.stop_ms - self.start_ms) / 1000


RUN_COLUMNS = ("arn, run_id, pipeline, status, logical_date, reason, parents, downstream, "
               "created_ms, start_ms, stop_ms, error")


def run_row(row: tuple[Any, ...]) -> RunRow:
    """Build a RunRow from a SELECT of RUN_COLUMNS."""
    return RunRow(row[0], row[1], row[2], row[3], row[4], row[5], json.loads(row[6]),
                  bool(row[7]), row[8], row[9], row[10], row[11])


def init(conn: sqlite3.Connection) -> None:
    """Create the runtime's tables (and add the columns a state from an older dpc lacks)."""
    conn.executescript(SCHEMA)
    columns = {r[1] for r in conn.execute("PRAGMA table_info(lr_runs)")}
    if "interrupted" not in columns:
        # 1: the run ended because the runtime stopped (Ctrl-C, SIGTERM, kill -9), not
        # because a step failed; 2: such a run that was since run again (local/backfill.py).
        with contextlib.suppress(sqlite3.OperationalError):  # another process added it
            conn.execute("ALTER TABLE lr_runs ADD COLUMN interrupted INTEGER NOT NULL "
                         "DEFAULT 0")
    if "attempt" not in {r[1] for r in conn.execute("PRAGMA table_info(lr_steps)")}:
        # Which attempt of the step (its `retries:`) runs or ran last; 1 without retries.
        with contextlib.suppress(sqlite3.OperationalError):  # another process added it
            conn.execute("ALTER TABLE lr_steps ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1")
    conn.execute("CREATE INDEX IF NOT EXISTS lr_runs_interrupted ON lr_runs (arn) "
                 "WHERE interrupted = 1")


def state_path(workspace: Path) -> Path:
    """Where a workspace keeps its state database."""
    return workspace / ".dpc" / "state.db"


@dataclass(frozen=True)
class ProblemRow:
    """An item a background thread set aside (lr_problems)."""

    id: int
    created_ms: int
    source: str
    item: str
    error: str
    detail: str


def record_problem(conn: sqlite3.Connection, source: str, item: str, error: str,
                   detail: str = "") -> None:
    """Set an item aside with the error it caused (inside the caller's transaction)."""
    conn.execute("INSERT INTO lr_problems (created_ms, source, item, error, detail) "
                 "VALUES (?, ?, ?, ?, ?)", (now_ms(), source, item[:4000], error[:2000],
                                            detail[:20000]))


def list_problems(conn: sqlite3.Connection) -> list[ProblemRow]:
    """Every item set aside, oldest first."""
    return [ProblemRow(*r) for r in conn.execute(
        "SELECT id, created_ms, source, item, error, detail FROM lr_problems ORDER BY id")]
