"""``dpc local logs RUN --follow``: tail a run's step logs until the run ends.

The runtime writes each step's output to its log file as the step runs and records
the step (with the file) in ``lr_steps`` when it starts; following is reading both
again every ``poll`` seconds. A run that is already over prints whole and returns.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from dpc_core.local.state import RUN_COLUMNS, TERMINAL, RunRow, run_row
from dpc_core.stores.sqlite import SqliteStore


def _run(store: SqliteStore, arn: str) -> RunRow:
    return run_row(store.conn.execute(f"SELECT {RUN_COLUMNS} FROM lr_runs WHERE arn = ?",
                                      (arn,)).fetchone())


def follow_run(store: SqliteStore, row: RunRow, echo: Callable[[str], None], *,
               poll: float = 0.5, timeout: float | None = None) -> RunRow:
    """Print each step's log as it grows until the run is terminal; return the final row.

    Lines are printed whole (a partial last line waits for its newline, or the end).
    ``timeout`` (seconds) bounds the wait, for tests; None waits for the run to end.
    """
    offsets: dict[int, int] = {}
    pending: dict[int, str] = {}
    announced: set[int] = set()
    deadline = None if timeout is None else time.monotonic() + timeout
    echo(f"# {row.name}@{row.account} {row.run_id} {row.status}")
    while True:
        # Read the run's status before the logs: whatever was written before it ended
        # is then read on this same pass, so nothing is lost at the end.
        current = _run(store, row.arn)
        done = current.status in TERMINAL
        steps = store.conn.execute(
            "SELECT idx, name, log_path FROM lr_steps WHERE arn = ? ORDER BY idx",
            (row.arn,)).fetchall()
        for idx, name, log_path in steps:
            if idx not in announced:
                announced.add(idx)
                echo(f"## step {name}")
            if not log_path:
                continue
            try:
                with Path(log_path).open("rb") as fh:
                    fh.seek(offsets.get(idx, 0))
                    chunk = fh.read()
            except OSError:
                continue
            offsets[idx] = offsets.get(idx, 0) + len(chunk)
            text = pending.pop(idx, "") + chunk.decode(errors="replace")
            lines = text.split("\n")
            pending[idx] = lines.pop()
            for line in lines:
                echo(line)
        if done:
            for idx in sorted(pending):
                if pending[idx]:
                    echo(pending[idx])
            echo(f"# {current.status}" + (f": {current.error}" if current.error else ""))
            return current
        if deadline is not None and time.monotonic() > deadline:
            return current
        time.sleep(poll)
