"""Operating the local runtime: cancel one run, stop the runtime with Ctrl-C. The real
`dpc` CLI in subprocesses, real shell steps whose process groups are terminated, a real
state.db. An operator's abort is recorded (who, why) and is not a failure announced as
BLOCKED downstream."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from helpers.operate import NO_CREDENTIALS, Up, status
from local_helpers import A, C, dpc, runs_of, wait_for, write_pipeline

DAY = "2026-11-26"


def slow_parent_and_child(ws: Path) -> Path:
    """nightly (A): a step whose shell starts a grandchild `sleep` and records its pid;
    report (C): waits on nightly, and is told of BLOCKED windows by email."""
    write_pipeline(ws, "nightly", A, """steps:
  - name: load
    type: shell
    command: 'sleep 120 & echo $! > "$DPC_WORK_DIR/grandchild"; wait'
""")
    write_pipeline(ws, "report", C, f"""trigger:
  executions:
    allOf:
      - {{name: nightly, account: "{A}", status: [SUCCEEDED]}}
steps:
  - {{name: s, type: shell, command: 'true'}}
notifications:
  type: FAILURES_ONLY
  targets:
    - {{channel: EMAIL, addresses: [report-team@example.com]}}
""")
    return ws


def grandchild_pid(ws: Path) -> int:
    found: list[int] = []

    def written() -> bool:
        found[:] = [int(p.read_text()) for p in (ws / ".dpc" / "runs").rglob("grandchild")
                    if p.read_text().strip().isdigit()]
        return bool(found)

    wait_for(written, "the step started its grandchild")
    return found[0]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purpose (reaped by init later).
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def notes(ws: Path) -> list[dict[str, Any]]:
    return list(json.loads(dpc("local", "notifications", "--format", "json", "-w",
                               ws).stdout))


def test_cancel_with_the_runtime_up_ends_the_step_group_and_records_who_and_why(
        tmp_path: Path) -> None:
    ws = slow_parent_and_child(tmp_path / "ws")
    dpc("local", "start", "nightly", "--date", DAY, "-w", ws)
    up = Up(ws, tmp_path / "up.log")
    try:
        wait_for(lambda: status(ws, "nightly") == "RUNNING", "nightly running")
        sleeper = grandchild_pid(ws)
        out = dpc("local", "cancel", "nightly", "--reason", "wrong input file", "-w", ws,
                  "--format", "json", env={"DPC_USER": "alice"})
        result = json.loads(out.stdout)
        assert result["status"] == "ABORTED" and result["by"] == "alice"
        wait_for(lambda: not alive(sleeper), "the step's process group is gone", 30)
        wait_for(lambda: "nightly" in up.log.read_text() and "ABORTED" in up.log.read_text(),
                 "the runtime printed the abort")
    finally:
        rc = up.stop()
    assert rc == 130
    (run,) = runs_of(ws, "nightly")
    assert run["status"] == "ABORTED"
    assert run["error"] == "cancelled by alice: wrong input file"
    # Not a failure: no BLOCKED notice for the child, which did not run.
    assert not [n for n in notes(ws) if n["kind"] == "PIPELINE_BLOCKED"]
    assert runs_of(ws, "report") == []


def test_cancel_without_a_runtime_ends_a_queued_run_and_the_next_up_hands_it_on(
        tmp_path: Path) -> None:
    ws = slow_parent_and_child(tmp_path / "ws")
    dpc("local", "start", "nightly", "--date", DAY, "-w", ws)
    out = dpc("local", "cancel", "nightly", "--date", DAY, "-w", ws,
              env={"DPC_USER": "bob"}).stdout
    assert "ABORTED" in out and "cancelled by bob" in out
    (run,) = runs_of(ws, "nightly")
    assert run["status"] == "ABORTED" and run["error"] == "cancelled by bob"
    up = dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws, env=NO_CREDENTIALS,
             check=False)
    assert "Traceback" not in up.stderr
    assert [r["status"] for r in runs_of(ws, "nightly")] == ["ABORTED"]  # not run again
    assert not [n for n in notes(ws) if n["kind"] == "PIPELINE_BLOCKED"]
    # A run that already ended cannot be cancelled: one line, exit 2.
    again = dpc("local", "cancel", run["run_id"], "-w", ws, check=False)
    assert again.returncode == 2 and "already ended ABORTED" in again.stderr
    assert "Traceback" not in again.stderr


@pytest.mark.parametrize("pid_row", ["pid-recorded", "pid-file-only"])
def test_cancel_without_a_runtime_ends_the_step_a_dead_runtime_left_running(
        tmp_path: Path, pid_row: str) -> None:
    ws = slow_parent_and_child(tmp_path / "ws")
    dpc("local", "start", "nightly", "--date", DAY, "-w", ws)
    up = Up(ws, tmp_path / "up.log")
    try:
        wait_for(lambda: status(ws, "nightly") == "RUNNING", "nightly running")
        sleeper = grandchild_pid(ws)
        wait_for(lambda: runs_of(ws, "nightly") and _step_pid(ws) is not None, "pid recorded")
    finally:
        up.stop(signal.SIGKILL)
    assert alive(sleeper)  # the step's group outlived the runtime
    if pid_row == "pid-file-only":  # killed before the pid reached its row
        import sqlite3

        conn = sqlite3.connect(ws / ".dpc" / "state.db")
        with conn:
            conn.execute("UPDATE lr_steps SET pid = NULL")
        conn.close()
    dpc("local", "cancel", "nightly", "-w", ws, "--reason", "stuck", env={"DPC_USER": "carol"})
    wait_for(lambda: not alive(sleeper), "the orphaned step group is gone", 30)
    (run,) = runs_of(ws, "nightly")
    assert run["status"] == "ABORTED" and run["error"] == "cancelled by carol: stuck"


def _step_pid(ws: Path) -> int | None:
    import sqlite3

    conn = sqlite3.connect(ws / ".dpc" / "state.db")
    try:
        row = conn.execute("SELECT pid FROM lr_steps").fetchone()
    finally:
        conn.close()
    return row[0] if row else None


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_stopping_the_runtime_aborts_runs_as_an_interrupt_and_blocks_nobody(
        tmp_path: Path, sig: int) -> None:
    ws = slow_parent_and_child(tmp_path / "ws")
    dpc("local", "start", "nightly", "--date", DAY, "-w", ws)
    up = Up(ws, tmp_path / "up.log")
    wait_for(lambda: status(ws, "nightly") == "RUNNING", "nightly running")
    grandchild_pid(ws)
    time.sleep(0.2)  # not a timing assertion: only lets the step settle in its wait
    assert up.stop(sig) == 128 + sig
    (run,) = runs_of(ws, "nightly")
    assert run["status"] == "ABORTED"
    assert run["error"].startswith("aborted by interrupt: the runtime was stopped")
    assert not [n for n in notes(ws) if n["kind"] == "PIPELINE_BLOCKED"]


# -- pause / resume ---------------------------------------------------------------------


def test_a_paused_child_holds_its_trigger_and_runs_once_on_resume(tmp_path: Path) -> None:
    from local_helpers import noop_case_study

    ws = noop_case_study(tmp_path / "ws")
    out = dpc("local", "pause", "pipeline-x", "--reason", "schema migration", "-w", ws,
              env={"DPC_USER": "dana"}).stdout
    assert "paused: PAUSED by dana" in out and "schema migration" in out
    for name in ("listings", "searches"):
        dpc("local", "start", name, "--date", DAY, "-w", ws)
    dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws)
    assert runs_of(ws, "pipeline-x") == []  # held, not run

    status = dpc("local", "status", "--date", DAY, "-w", ws).stdout
    (line,) = [x for x in status.splitlines() if x.strip().startswith("pipeline-x ")]
    assert "PAUSED by dana" in line and "schema migration" in line and "1 held" in line
    doc = json.loads(dpc("local", "status", "--date", DAY, "-w", ws, "--format",
                         "json").stdout)
    (x,) = [p for p in doc["pipelines"] if p["pipeline"] == "pipeline-x"]
    assert x["paused"]["by"] == "dana" and x["paused"]["held"] == 1
    assert f"{C}/pipeline-x: PAUSED by dana" in dpc("local", "runs", "-w", ws).stdout

    assert "resumed; 1 held" in dpc("local", "resume", "pipeline-x", "-w", ws).stdout
    dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws)
    (run,) = runs_of(ws, "pipeline-x")
    assert run["status"] == "SUCCEEDED" and run["reason"] == "trigger"
    assert {p["pipeline"] for p in run["parents"]} == {"listings", "searches"}
    assert "PAUSED" not in dpc("local", "status", "--date", DAY, "-w", ws).stdout
    # Released once: another start of the runtime starts nothing more.
    dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws)
    assert len(runs_of(ws, "pipeline-x")) == 1


def test_a_paused_pipelines_schedule_firing_is_held_and_started_on_resume(
        tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from local_helpers import noop_case_study

    from dpc_core.local.runtime import Runtime

    ws = noop_case_study(tmp_path / "ws")
    dpc("local", "pause", "listings", "--reason", "source down", "-w", ws)
    rt = Runtime(ws, schedules=False, out=lambda _: None)
    rt.open()
    try:
        rt.start()
        rt._fire(f"{A}/listings", datetime(2026, 11, 26, 3, 0, tzinfo=UTC))
        rt.serve(until_idle=True)
    finally:
        rt.shutdown()
    assert runs_of(ws, "listings") == []
    dpc("local", "resume", "listings", "-w", ws)
    dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws)
    (run,) = runs_of(ws, "listings")
    assert (run["logical_date"], run["reason"], run["status"]) == (DAY, "schedule", "SUCCEEDED")


def test_resume_with_the_runtime_up_releases_the_held_trigger_at_once(tmp_path: Path) -> None:
    from local_helpers import noop_case_study

    ws = noop_case_study(tmp_path / "ws")
    dpc("local", "pause", "pipeline-x", "--reason", "hold on", "-w", ws)
    for name in ("listings", "searches"):
        dpc("local", "start", name, "--date", DAY, "-w", ws)
    up = Up(ws, tmp_path / "up.log")
    try:
        wait_for(lambda: status(ws, "listings") == "SUCCEEDED"
                 and status(ws, "searches") == "SUCCEEDED", "parents done")
        wait_for(lambda: "1 held" in dpc("local", "status", "--date", DAY, "-w", ws).stdout,
                 "the trigger is held")
        assert runs_of(ws, "pipeline-x") == []
        out = dpc("local", "resume", "pipeline-x", "-w", ws).stdout
        assert "released by the running runtime" in out
        wait_for(lambda: status(ws, "pipeline-x") == "SUCCEEDED", "pipeline-x ran", 60)
    finally:
        assert up.stop() == 130
    assert len(runs_of(ws, "pipeline-x")) == 1
