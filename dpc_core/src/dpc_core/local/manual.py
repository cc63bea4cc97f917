"""Runs queued by hand: ``dpc local start``, ``dpc rerun [--downstream]`` and the web UI's
actions all go through :func:`queue_run`.

Below both the CLI (:mod:`dpc_core.cli.local`) and the UI (:mod:`dpc_core.ui.data`),
which import it; it imports neither (the runtime is imported when a run is queued).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click


def logical_date(value: str | None) -> str:
    """A logical date given on the command line or by the web UI (today, UTC, when none);
    ``click.BadParameter`` otherwise (the UI answers 400 with its text)."""
    if value is None:
        return dt.date.today().isoformat()
    from dpc_core.events import is_logical_date

    # Exactly these two forms (date.fromisoformat also takes 2026-W48-4 or 20261126).
    if len(value) not in (10, 13) or not is_logical_date(value):
        raise click.BadParameter(f"{value!r}: use YYYY-MM-DD (or YYYY-MM-DDTHH)")
    return value


def queue_run(workspace: Path, pipeline: str, date: str | None, reason: str,
              downstream: bool = False) -> str:
    """Queue a run by hand (``manual``, ``rerun`` or ``rerun-downstream``) into the
    workspace's state and wake a running runtime; returns the line to show the user.
    ``dpc local start``, ``dpc rerun`` and the web UI's actions all go through here."""
    from dpc_core.local.runtime import Workspace, insert_run, manual_run_id
    from dpc_core.local.state import guarded

    ws = Workspace(workspace.resolve())
    # Refused here (did you mean …, exit 2) rather than queued and failed by the runtime.
    key = ws.resolve(ws.keys(), pipeline)
    logical = logical_date(date)
    store = ws.connect()
    prefix = {"manual": "manual", "rerun": "rerun", "rerun-downstream": "rerun"}[reason]
    run_id = manual_run_id(prefix, logical)
    with guarded(ws.db_path), store.transaction():
        insert_run(store, key, run_id, logical, reason, downstream=downstream)
    store.close()
    running = ws.poke()
    where = "started by the running runtime" if running else \
        "queued; it runs when `dpc local up` starts"
    return f"{key} {run_id} for {logical}: {where}"
