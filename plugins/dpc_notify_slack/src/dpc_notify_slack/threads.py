"""Where a run's Slack thread is: ``(run id, channel) -> (channel id, root ts)``.

The backend keeps this so every message of a run after the first is a reply in the thread
of its root message. In memory by default; SQLite when the local runtime must keep threads
across restarts (``DPC_SLACK_THREADS_DB``).
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class ThreadRef:
    """The root message of a run in one channel: the channel id Slack answered and its ts."""

    channel_id: str
    ts: str


class ThreadStore(Protocol):
    """Remembers the root message of each run in each channel."""

    def get(self, run_id: str, channel: str) -> ThreadRef | None:
        """The root of ``run_id`` in ``channel`` (as written in ``addresses``), if posted."""

    def put(self, run_id: str, channel: str, ref: ThreadRef) -> None:
        """Remember the root of ``run_id`` in ``channel``."""


class InMemoryThreadStore:
    """Threads of this process only."""

    def __init__(self) -> None:
        self._refs: dict[tuple[str, str], ThreadRef] = {}
        self._lock = threading.Lock()

    def get(self, run_id: str, channel: str) -> ThreadRef | None:
        """The root of ``run_id`` in ``channel``, if posted by this process."""
        with self._lock:
            return self._refs.get((run_id, channel))

    def put(self, run_id: str, channel: str, ref: ThreadRef) -> None:
        """Remember the root of ``run_id`` in ``channel``."""
        with self._lock:
            self._refs[(run_id, channel)] = ref


class SqliteThreadStore:
    """Threads kept in a SQLite file, shared by processes and kept across restarts."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = self._connect()
        try:
            with db:
                db.execute(
                    "CREATE TABLE IF NOT EXISTS slack_threads ("
                    " run_id TEXT NOT NULL, channel TEXT NOT NULL,"
                    " channel_id TEXT NOT NULL, ts TEXT NOT NULL,"
                    " PRIMARY KEY (run_id, channel))"
                )
        finally:
            db.close()

    def _connect(self) -> sqlite3.Connection:
        # One short-lived connection per call: safe across threads and processes.
        return sqlite3.connect(self.path, timeout=10)

    def get(self, run_id: str, channel: str) -> ThreadRef | None:
        """The root of ``run_id`` in ``channel``, if any process posted it."""
        db = self._connect()
        try:
            row = db.execute(
                "SELECT channel_id, ts FROM slack_threads WHERE run_id = ? AND channel = ?",
                (run_id, channel),
            ).fetchone()
        finally:
            db.close()
        return ThreadRef(row[0], row[1]) if row else None

    def put(self, run_id: str, channel: str, ref: ThreadRef) -> None:
        """Remember the root of ``run_id`` in ``channel``."""
        db = self._connect()
        try:
            with db:
                db.execute(
                    "INSERT OR REPLACE INTO slack_threads (run_id, channel, channel_id, ts)"
                    " VALUES (?, ?, ?, ?)",
                    (run_id, channel, ref.channel_id, ref.ts),
                )
        finally:
            db.close()
