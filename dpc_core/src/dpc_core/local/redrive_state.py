"""The redrives of local runs (``lr_redrives``), one row per redrive with the status the
run had ended before; read by the runtime, written by ``dpc local redrive``
(:mod:`dpc_core.local.redrive`)."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dpc_core.stores.sqlite import SqliteStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS lr_redrives (
    arn TEXT NOT NULL,
    count INTEGER NOT NULL,
    by TEXT NOT NULL,
    requested_ms INTEGER NOT NULL,
    prior_status TEXT NOT NULL,
    prior_error TEXT,
    PRIMARY KEY (arn, count)
);
"""

#: What a run may have ended as to be redriven (as Step Functions allows).
REDRIVABLE = ("FAILED", "TIMED_OUT", "ABORTED")


def init(conn: sqlite3.Connection) -> None:
    """Create the redrive table."""
    conn.executescript(SCHEMA)


def count(conn: sqlite3.Connection, arn: str) -> int:
    """How many times ``arn`` was redriven (0 in a state written before redrives)."""
    try:
        row = conn.execute("SELECT MAX(count) FROM lr_redrives WHERE arn = ?",
                           (arn,)).fetchone()
    except sqlite3.OperationalError:
        return 0
    return int(row[0] or 0)


def counts(conn: sqlite3.Connection) -> dict[str, int]:
    """Each redriven run's redrive count, by ARN."""
    try:
        return {str(a): int(n) for a, n in conn.execute(
            "SELECT arn, MAX(count) FROM lr_redrives GROUP BY arn")}
    except sqlite3.OperationalError:
        return {}


def succeeded_steps(store: SqliteStore, arn: str) -> set[tuple[int, str]]:
    """(index, name) of the steps of a redriven run that SUCCEEDED before: the runtime
    does not run them again. Empty for a run never redriven."""
    with store.transaction():
        if count(store.conn, arn) == 0:
            return set()
        return {(int(i), str(n)) for i, n in store.conn.execute(
            "SELECT idx, name FROM lr_steps WHERE arn = ? AND status = 'SUCCEEDED'", (arn,))}
