"""Helpers for the local-runtime tests: the real `dpc` CLI in subprocesses, state reads."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SEED = REPO / "examples" / "seed"
CASE_STUDY_EVENTS = SEED / "events"
SHELL_CASE_STUDY = REPO / "examples" / "case-study-shell"
DPC = str(Path(sys.executable).parent / "dpc")

A, B, C = "111111111111", "222222222222", "333333333333"


def dpc(*args: object, env: dict[str, str] | None = None, timeout: float = 300,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the real `dpc` command."""
    proc = subprocess.run([DPC, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"dpc {args} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def copy_workspace(src: Path, dst: Path) -> Path:
    """A fresh copy of a workspace (without state)."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".dpc"))
    return dst


def write_pipeline(ws: Path, name: str, account: str, body: str) -> None:
    """Write ws/<account>-<name>/pipeline.yaml."""
    d = ws / f"{account}-{name}"
    d.mkdir(parents=True, exist_ok=True)
    (d / "pipeline.yaml").write_text(f'name: {name}\naccount: "{account}"\n{body}')


def listings_and_child(ws: Path, parent: str, child: str) -> Path:
    """listings (A, no trigger: started by hand or a backfill) running the shell command
    ``parent``, and one child (C) running ``child`` when listings succeeds."""
    write_pipeline(ws, "listings", A,
                   f"steps:\n  - {{name: s, type: shell, command: '{parent}'}}\n")
    write_pipeline(ws, "child", C, f"""trigger:
  executions:
    allOf:
      - {{name: listings, account: "{A}", status: [SUCCESS]}}
steps:
  - {{name: s, type: shell, command: '{child}'}}
""")
    return ws


def noop_case_study(ws: Path, rerun: str = "never") -> Path:
    """The four case-study pipelines with the seed's triggers and no-op shell steps."""
    step = "steps:\n  - name: s\n    type: shell\n    command: 'true'\n"
    write_pipeline(ws, "listings", A, "trigger:\n  schedule: {hour: 3}\n" + step)
    write_pipeline(ws, "searches", B, "trigger:\n  schedule: {hour: 5}\n" + step)
    write_pipeline(ws, "pipeline-x", C, f"""trigger:
  rerun: {rerun}
  executions:
    allOf:
      - {{name: listings, account: "{A}", status: [SUCCESS]}}
      - {{name: searches, account: "{B}", status: [SUCCESS]}}
""" + step)
    write_pipeline(ws, "listings-fallback", C, f"""trigger:
  executions:
    anyOf:
      - {{name: listings, account: "{A}", status: [FAILED, TIMED_OUT]}}
""" + step)
    return ws


def runs(ws: Path) -> list[dict[str, Any]]:
    """Every run of the workspace, oldest first."""
    conn = sqlite3.connect(ws / ".dpc" / "state.db")
    conn.row_factory = sqlite3.Row
    rows = [dict(r) for r in conn.execute("SELECT * FROM lr_runs ORDER BY created_ms, arn")]
    conn.close()
    for r in rows:
        r["parents"] = json.loads(r["parents"])
        r["name"] = r["pipeline"].split("/", 1)[1]
    return rows


def runs_of(ws: Path, name: str) -> list[dict[str, Any]]:
    """Runs of one pipeline (by name)."""
    return [r for r in runs(ws) if r["name"] == name]


def pending_outbox(ws: Path) -> int:
    """Outbox items not yet processed."""
    conn = sqlite3.connect(ws / ".dpc" / "state.db")
    n = conn.execute("SELECT COUNT(*) FROM lr_outbox WHERE done_ms IS NULL").fetchone()[0]
    conn.close()
    return int(n)


def wait_for(predicate: Callable[[], object], what: str = "condition",
             timeout: float = 60.0) -> None:
    """Poll until ``predicate()`` holds (a deadline, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"not reached in {timeout:.0f}s: {what}")


def stop_process(proc: subprocess.Popen[Any]) -> None:
    """Terminate a server or runtime a test started, killing it if it has not ended
    within 10 s."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
