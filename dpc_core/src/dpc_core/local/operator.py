"""What an operator does to runs on the local runtime: cancel one run (``dpc local cancel``),
the stop of the runtime itself (Ctrl-C), recorded as who aborted which run and why; and
pause / resume a pipeline (``lr_paused``): while paused, the engine holds its triggers
(:class:`dpc_core.engine.Held`) and its schedule firings are held too (``lr_held``); on
resume the runtime releases them, the engine deciding each held window under the
pipeline's ``rerun`` policy (:meth:`dpc_core.engine.Engine.release`).

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
    conn.executescript(SCHEMA + PAUSE_SCHEMA)


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


# -- pause / resume -------------------------------------------------------------------

PAUSE_SCHEMA = """
CREATE TABLE IF NOT EXISTS lr_paused (
    pipeline TEXT PRIMARY KEY,
    by TEXT NOT NULL,
    reason TEXT NOT NULL,
    since_ms INTEGER NOT NULL
);
-- What a paused pipeline did not start: a trigger the engine held (kind 'trigger'), or a
-- schedule firing (kind 'schedule'); released when the pipeline is resumed.
CREATE TABLE IF NOT EXISTS lr_held (
    pipeline TEXT NOT NULL,
    window TEXT NOT NULL,
    kind TEXT NOT NULL,
    downstream INTEGER NOT NULL DEFAULT 0,
    held_ms INTEGER NOT NULL,
    PRIMARY KEY (pipeline, window, kind)
);
"""


@dataclass(frozen=True)
class Paused:
    """A paused pipeline: who paused it, why, since when, and how much it holds."""

    pipeline: str
    by: str
    reason: str
    since_ms: int
    held: int = 0

    def text(self) -> str:
        """``PAUSED by alice: reason (2 held)``."""
        from dpc_core.local.views import at_utc

        held = f", {self.held} held" if self.held else ""
        return (f"PAUSED by {self.by} since {at_utc(self.since_ms)}"
                + (f": {self.reason}" if self.reason else "") + held)

    def to_dict(self) -> dict[str, object]:
        """JSON shape."""
        return {"pipeline": self.pipeline, "by": self.by, "reason": self.reason,
                "sinceMs": self.since_ms, "held": self.held}


def init_pause(conn: sqlite3.Connection) -> None:
    """Create the pause tables (idempotent)."""
    conn.executescript(PAUSE_SCHEMA)


def pause(conn: sqlite3.Connection, key: str, by: str, reason: str) -> bool:
    """Pause ``key``; False when it already was (who paused it first stands)."""
    cur = conn.execute("INSERT OR IGNORE INTO lr_paused (pipeline, by, reason, since_ms) "
                       "VALUES (?, ?, ?, ?)", (key, by[:100], reason[:500], now_ms()))
    return cur.rowcount == 1


def resume(conn: sqlite3.Connection, key: str) -> bool:
    """Resume ``key`` (its held triggers are released by the runtime); False when it was
    not paused."""
    return conn.execute("DELETE FROM lr_paused WHERE pipeline = ?", (key,)).rowcount == 1


def is_paused(conn: sqlite3.Connection, key: str) -> bool:
    """Whether ``key`` is paused."""
    return conn.execute("SELECT 1 FROM lr_paused WHERE pipeline = ?",
                        (key,)).fetchone() is not None


def paused_pipelines(conn: sqlite3.Connection) -> dict[str, Paused]:
    """Every paused pipeline by key, with how many triggers or firings it holds (empty
    in a state written before pauses existed)."""
    try:
        rows = conn.execute(
            "SELECT p.pipeline, p.by, p.reason, p.since_ms, (SELECT COUNT(*) FROM lr_held h "
            "WHERE h.pipeline = p.pipeline) FROM lr_paused p ORDER BY p.pipeline").fetchall()
    except sqlite3.OperationalError:
        return {}
    return {r[0]: Paused(*r) for r in rows}


def hold(conn: sqlite3.Connection, key: str, window: str, kind: str,
         downstream: bool = False) -> None:
    """Keep what a paused pipeline did not start (once per window and kind)."""
    conn.execute("INSERT INTO lr_held (pipeline, window, kind, downstream, held_ms) VALUES "
                 "(?, ?, ?, ?, ?) ON CONFLICT (pipeline, window, kind) DO UPDATE SET "
                 "downstream = MAX(downstream, excluded.downstream)",
                 (key, window, kind, int(downstream), now_ms()))


def releasable(conn: sqlite3.Connection) -> dict[str, list[tuple[str, str, bool]]]:
    """Held items of pipelines no longer paused: key -> [(window, kind, downstream)]."""
    out: dict[str, list[tuple[str, str, bool]]] = {}
    for key, window, kind, downstream in conn.execute(
            "SELECT pipeline, window, kind, downstream FROM lr_held WHERE pipeline NOT IN "
            "(SELECT pipeline FROM lr_paused) ORDER BY pipeline, window"):
        out.setdefault(key, []).append((window, kind, bool(downstream)))
    return out


def forget_held(conn: sqlite3.Connection, key: str) -> None:
    """The held items of ``key`` were released."""
    conn.execute("DELETE FROM lr_held WHERE pipeline = ?", (key,))
