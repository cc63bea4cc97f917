"""What an operator does to runs on the local runtime: cancel one run (``dpc local cancel``),
and the stop of the runtime itself (Ctrl-C), recorded as who aborted which run and why.

``lr_aborts`` holds one row per run an operator aborted (or asked to abort): who, why, and
when it was done. A run aborted by an operator is not a failure: :mod:`notices` sends no
BLOCKED notice downstream for it (the engine's trigger rules still see its ABORTED status,
as on AWS, where StopExecution emits one).

A cancel is recorded here whether the runtime is up or not. When it is, the runtime picks
the request up (on the wake-up the command sends, or within a second) and terminates the
step's process group itself; when it is not, the command does that and records the run's
end (its status event and notification wait in the outbox for the next ``dpc local up``).
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import os
import signal
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from dpc_core.local.state import now_ms

SCHEMA = """
CREATE TABLE IF NOT EXISTS lr_aborts (
    arn TEXT PRIMARY KEY,
    by TEXT NOT NULL,
    reason TEXT NOT NULL,
    requested_ms INTEGER NOT NULL,
    done_ms INTEGER
);
CREATE INDEX IF NOT EXISTS lr_aborts_open ON lr_aborts (requested_ms) WHERE done_ms IS NULL;
"""

#: Who stopped the runtime's runs when it was interrupted (Ctrl-C, SIGTERM).
INTERRUPT = "interrupt"


def init(conn: sqlite3.Connection) -> None:
    """Create the operator tables (idempotent; commits first, as executescript does)."""
    conn.executescript(SCHEMA)


def operator_name(env: dict[str, str] | None = None) -> str:
    """Who is at the keyboard: ``DPC_USER``, else the login name (getpass)."""
    env = dict(os.environ) if env is None else env
    name = env.get("DPC_USER", "").strip()
    if name:
        return name[:100]
    try:
        return getpass.getuser()[:100]
    except Exception:  # no user name in this environment (a container without passwd)
        return f"uid {os.getuid()}"


@dataclass(frozen=True)
class Abort:
    """An operator's abort of one run."""

    arn: str
    by: str
    reason: str
    requested_ms: int
    done_ms: int | None

    def text(self) -> str:
        """The run's error text: who aborted it and why."""
        if self.by.startswith(INTERRUPT):
            return f"aborted by {self.by}: {self.reason}"
        return f"cancelled by {self.by}" + (f": {self.reason}" if self.reason else "")


def request(conn: sqlite3.Connection, arn: str, by: str, reason: str) -> None:
    """Record the abort of ``arn`` (the first request stands: who asked first is who
    cancelled it)."""
    conn.execute("INSERT OR IGNORE INTO lr_aborts (arn, by, reason, requested_ms) "
                 "VALUES (?, ?, ?, ?)", (arn, by[:100], reason[:500], now_ms()))


def abort_of(conn: sqlite3.Connection, arn: str) -> Abort | None:
    """The operator's abort of ``arn``, if any (None in a state written before aborts
    existed)."""
    try:
        row = conn.execute("SELECT arn, by, reason, requested_ms, done_ms FROM lr_aborts "
                           "WHERE arn = ?", (arn,)).fetchone()
    except sqlite3.OperationalError:
        return None
    return Abort(*row) if row else None


def pending(conn: sqlite3.Connection) -> list[Abort]:
    """Requests not yet carried out, oldest first."""
    return [Abort(*r) for r in conn.execute(
        "SELECT arn, by, reason, requested_ms, done_ms FROM lr_aborts WHERE done_ms IS NULL "
        "ORDER BY requested_ms")]


def mark_done(conn: sqlite3.Connection, arn: str) -> None:
    """The run ended ABORTED."""
    conn.execute("UPDATE lr_aborts SET done_ms = COALESCE(done_ms, ?) WHERE arn = ?",
                 (now_ms(), arn))


def runtime_running(state_dir: Path) -> bool:
    """Whether a ``dpc local up`` holds the workspace's lock."""
    path = state_dir / "runtime.lock"
    if not path.exists():
        return False
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
    return False


def terminate_group(pid: int, grace_s: float = 10.0) -> None:
    """SIGTERM a step's process group (steps run in their own session), SIGKILL what is
    left after ``grace_s``."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
