"""The local runtime's state: runs, steps, an outbox of events, schedules (SQLite).

The engine's own tables (registry, run log, windows, claims) live in the same file,
so a state change, the events it causes and the engine's decisions commit together.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
"""

REGION = "local"
TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")


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
    """Create the runtime's tables."""
    conn.executescript(SCHEMA)


def state_path(workspace: Path) -> Path:
    """Where a workspace keeps its state database."""
    return workspace / ".dpc" / "state.db"
