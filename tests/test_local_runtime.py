"""The local runtime, end to end, through the real `dpc` CLI and real subprocesses."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from local_helpers import (
    CASE_STUDY_EVENTS,
    DPC,
    SHELL_CASE_STUDY,
    A,
    C,
    copy_workspace,
    dpc,
    noop_case_study,
    pending_outbox,
    runs,
    runs_of,
    wait_for,
    write_pipeline,
)

DAY = "2026-11-26"
pytestmark = pytest.mark.case_study


def test_case_study_shell_variant_runs_pipeline_x_once_after_both_parents(tmp_path: Path) -> None:
    ws = copy_workspace(SHELL_CASE_STUDY, tmp_path / "ws")
    dpc("local", "start", "listings", "--date", DAY, "-w", ws)
    dpc("local", "start", "searches", "--date", DAY, "-w", ws)
    dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws)

    (listings,), (searches,), xs = (runs_of(ws, "listings"), runs_of(ws, "searches"),
                                    runs_of(ws, "pipeline-x"))
    assert listings["status"] == searches["status"] == "SUCCEEDED"
    assert len(xs) == 1
    x = xs[0]
    assert x["status"] == "SUCCEEDED" and x["reason"] == "trigger"
    assert x["logical_date"] == DAY
    assert x["start_ms"] >= max(listings["stop_ms"], searches["stop_ms"])
    assert {p["executionArn"] for p in x["parents"]} == {listings["arn"], searches["arn"]}
    assert runs_of(ws, "listings-fallback") == []
    metric = json.loads((ws / ".dpc/data/pipeline-x" / f"date={DAY}" / "metric_x.json").read_text())
    assert metric["x"] > 0
    assert pending_outbox(ws) == 0


def test_timeline_and_status_show_trigger_reasons(tmp_path: Path) -> None:
    ws = copy_workspace(SHELL_CASE_STUDY, tmp_path / "ws")
    dpc("local", "start", "listings", "--date", DAY, "-w", ws)
    dpc("local", "start", "searches", "--date", DAY, "-w", ws)
    dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws)
    timeline = dpc("local", "timeline", "-w", ws).stdout
    assert "pipeline-x" in timeline and "triggered by listings@111111111111 SUCCEEDED" in timeline
    status = dpc("local", "status", "--date", DAY, "-w", ws).stdout
    assert "pipeline-x@333333333333 [triggered]: listings SUCCEEDED ✓, searches SUCCEEDED ✓" \
        in status
    assert "listings-fallback@333333333333 [waiting]" in status
    x = runs_of(ws, "pipeline-x")[0]
    logs = dpc("local", "logs", x["run_id"], "-w", ws).stdout
    assert f"METRIC X for {DAY}" in logs


def test_status_shows_which_parent_a_child_still_waits_for(tmp_path: Path) -> None:
    ws = copy_workspace(SHELL_CASE_STUDY, tmp_path / "ws")
    dpc("local", "start", "listings", "--date", DAY, "-w", ws)
    dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws)
    status = dpc("local", "status", "--date", DAY, "-w", ws).stdout
    assert "pipeline-x@333333333333 [waiting]: listings SUCCEEDED ✓, searches — waiting" in status


def test_a_failed_parent_runs_the_fallback_and_a_fixed_rerun_runs_pipeline_x(
        tmp_path: Path) -> None:
    ws = copy_workspace(SHELL_CASE_STUDY, tmp_path / "ws")
    dpc("local", "start", "listings", "--date", DAY, "-w", ws)
    dpc("local", "start", "searches", "--date", DAY, "-w", ws)
    up = dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws, env={"LISTINGS_FAIL": "1"},
             check=False)
    assert up.returncode == 1, up.stderr  # a run it ran did not succeed
    assert [r["status"] for r in runs_of(ws, "listings")] == ["FAILED"]
    assert "exited with code 1" in runs_of(ws, "listings")[0]["error"]
    fallback = runs_of(ws, "listings-fallback")
    assert [r["status"] for r in fallback] == ["SUCCEEDED"]
    assert runs_of(ws, "pipeline-x") == []

    dpc("rerun", "listings", "--date", DAY, "-w", ws)
    dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws)
    assert [r["status"] for r in runs_of(ws, "listings")] == ["FAILED", "SUCCEEDED"]
    xs = runs_of(ws, "pipeline-x")
    assert len(xs) == 1 and xs[0]["status"] == "SUCCEEDED"
    assert runs_of(ws, "listings")[1]["arn"] in {p["executionArn"] for p in xs[0]["parents"]}
    assert len(runs_of(ws, "listings-fallback")) == 1


def test_rerun_downstream_reruns_children_that_already_ran(tmp_path: Path) -> None:
    ws = copy_workspace(SHELL_CASE_STUDY, tmp_path / "ws")
    dpc("local", "start", "listings", "--date", DAY, "-w", ws)
    dpc("local", "start", "searches", "--date", DAY, "-w", ws)
    dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws)
    assert len(runs_of(ws, "pipeline-x")) == 1

    dpc("rerun", "listings", "--date", DAY, "-w", ws)  # without --downstream: rerun: never
    dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws)
    assert len(runs_of(ws, "pipeline-x")) == 1

    dpc("rerun", "listings", "--date", DAY, "--downstream", "-w", ws)
    dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws)
    xs = runs_of(ws, "pipeline-x")
    assert len(xs) == 2
    assert runs_of(ws, "listings")[-1]["arn"] in {p["executionArn"] for p in xs[1]["parents"]}


def _scenarios() -> list[str]:
    return sorted(p.name.removesuffix(".jsonl") for p in CASE_STUDY_EVENTS.glob("s*.jsonl"))


@pytest.mark.parametrize("scenario", _scenarios())
def test_triggers_md_scenario_through_the_local_event_path(tmp_path: Path, scenario: str) -> None:
    """The scenario's events enter the runtime's outbox like bus events; the children it
    triggers really run (no-op steps). Triggered runs must equal the expected decisions."""
    ws = noop_case_study(tmp_path / "ws")
    dpc("local", "inject", "--events", CASE_STUDY_EVENTS / f"{scenario}.jsonl", "-w", ws)
    dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws)
    expected = json.loads((CASE_STUDY_EVENTS / f"{scenario}.expected.json").read_text())
    triggered = [r for r in runs(ws) if r["reason"] == "trigger"]
    got = [{"pipeline": r["name"], "account": r["pipeline"].split("/")[0],
            "window": r["logical_date"], "parents": [p["executionArn"] for p in r["parents"]]}
           for r in triggered]
    assert got == expected
    assert all(r["status"] == "SUCCEEDED" for r in triggered)


def test_scenario_7_with_rerun_on_new_parent_run_runs_pipeline_x_again(tmp_path: Path) -> None:
    ws = noop_case_study(tmp_path / "ws", rerun="on-new-parent-run")
    dpc("local", "inject", "--events", CASE_STUDY_EVENTS / "s07_correction_rerun_never.jsonl",
        "-w", ws)
    dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws)
    xs = runs_of(ws, "pipeline-x")
    assert len(xs) == 2
    first = {p["executionArn"] for p in xs[0]["parents"]}
    new = {p["executionArn"] for p in xs[1]["parents"]} - first
    assert len(new) == 1 and ":execution:listings:" in new.pop()
    assert xs[1]["logical_date"] == xs[0]["logical_date"] == DAY


def _status_of(ws: Path, name: str) -> str | None:
    try:
        rs = runs_of(ws, name)
    except sqlite3.OperationalError:
        return None
    return rs[-1]["status"] if rs else None


@pytest.mark.parametrize("pid_row", [True, False], ids=["pid-recorded", "pid-not-recorded"])
def test_kill_9_then_up_fails_the_running_run_with_an_event_so_the_fallback_fires(
        tmp_path: Path, pid_row: bool) -> None:
    """Also when the runtime died before the step's pid reached its row (the row waits
    for the store): the pid file beside the step's log is enough to end the orphan."""
    ws = noop_case_study(tmp_path / "ws")
    write_pipeline(ws, "listings", A, "trigger:\n  schedule: {hour: 3}\nsteps:\n"
                   "  - {name: slow, type: shell, command: 'echo $$ > \"$DPC_WORK_DIR/pid\"; "
                   "sleep 60'}\n")
    dpc("local", "start", "listings", "--date", DAY, "-w", ws)
    proc = subprocess.Popen([DPC, "local", "up", "--no-schedule", "-w", str(ws)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: _status_of(ws, "listings") == "RUNNING")
        # RUNNING is recorded before the step starts: poll (with a deadline) until the step
        # has written its pid file, and until the write is complete.
        wait_for(lambda: any(p.read_text().strip().isdigit()
                              for p in (ws / ".dpc" / "runs").rglob("pid")))
        step_pid = int(next((ws / ".dpc" / "runs").rglob("pid")).read_text())
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    os.kill(step_pid, 0)  # the orphaned step is still alive after the runtime died
    if not pid_row:
        conn = sqlite3.connect(ws / ".dpc" / "state.db")
        with conn:
            conn.execute("UPDATE lr_steps SET pid = NULL")
        conn.close()

    out = dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws).stdout
    assert "RUNNING -> FAILED" in out
    (listings,) = runs_of(ws, "listings")
    assert listings["status"] == "FAILED"
    assert "runtime stopped" in listings["error"]
    fallback = runs_of(ws, "listings-fallback")
    assert len(fallback) == 1 and fallback[0]["status"] == "SUCCEEDED"
    assert fallback[0]["parents"][0]["executionArn"] == listings["arn"]
    # The recovery kills the orphan; on a loaded machine its exit can take a while to show.
    # Dead means gone or a zombie: the orphan's new parent is whatever reaps orphans here
    # (a container's PID 1 may reap late or never), not the runtime.
    for _ in range(400):
        if not _alive(step_pid):
            break
        time.sleep(0.05)
    assert not _alive(step_pid), f"the orphaned step {step_pid} is still running"


def _alive(pid: int) -> bool:
    """``pid`` exists and is not a zombie (killed, waiting to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def test_kill_9_at_random_moments_loses_nothing_and_duplicates_no_trigger(tmp_path: Path) -> None:
    """A chain and a join of short shell steps; the runtime is killed -9 several times while
    it works, then brought up until idle. Every child runs exactly once per window."""
    ws = tmp_path / "ws"
    step = "steps:\n  - {name: s, type: shell, command: 'sleep 0.15'}\n"
    write_pipeline(ws, "root", A, step)
    write_pipeline(ws, "other", A, step)
    prev = "root"
    chain = []
    for i in range(8):
        name = f"c{i}"
        write_pipeline(ws, name, C, "trigger:\n  executions:\n    allOf:\n"
                       f"      - {{name: {prev}, account: \"{C if i else A}\", "
                       "status: [SUCCEEDED]}\n" + step)
        chain.append(name)
        prev = name
    write_pipeline(ws, "join", C, "trigger:\n  executions:\n    allOf:\n"
                   f"      - {{name: c7, status: [SUCCEEDED]}}\n"
                   f"      - {{name: other, account: \"{A}\", status: [SUCCEEDED]}}\n" + step)
    for day in ("2026-11-25", "2026-11-26"):
        dpc("local", "start", "root", "--date", day, "-w", ws)
        dpc("local", "start", "other", "--date", day, "-w", ws)
    for delay in (0.9, 1.3, 0.7, 1.6):
        proc = subprocess.Popen([DPC, "local", "up", "--no-schedule", "-w", str(ws)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws)

    all_runs = runs(ws)
    assert all(r["status"] in {"SUCCEEDED", "FAILED"} for r in all_runs)
    assert pending_outbox(ws) == 0
    by_window: dict[tuple[str, str], int] = {}
    for r in all_runs:
        if r["reason"] == "trigger":
            key = (r["name"], r["logical_date"])
            by_window[key] = by_window.get(key, 0) + 1
    assert all(n == 1 for n in by_window.values()), by_window
    # Every child whose parent succeeded for a day was triggered for that day.
    for r in all_runs:
        if r["status"] != "SUCCEEDED":
            continue
        idx = ["root", *chain].index(r["name"]) if r["name"] in ["root", *chain] else None
        if idx is not None and idx < len(chain):
            assert (chain[idx], r["logical_date"]) in by_window
    conn = sqlite3.connect(ws / ".dpc" / "state.db")
    claims = conn.execute("SELECT COUNT(*) FROM claims").fetchone()[0]
    conn.close()
    assert claims == sum(by_window.values())


@pytest.mark.spark
def test_ctrl_c_stops_cleanly_and_the_running_run_ends_aborted(tmp_path: Path) -> None:
    ws = noop_case_study(tmp_path / "ws")
    write_pipeline(ws, "listings", A, "trigger:\n  schedule: {hour: 3}\nsteps:\n"
                   "  - {name: slow, type: shell, command: 'sleep 60'}\n")
    dpc("local", "start", "listings", "--date", DAY, "-w", ws)
    proc = subprocess.Popen([DPC, "local", "up", "--no-schedule", "-w", str(ws)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: _status_of(ws, "listings") == "RUNNING")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err  # as any command stopped by Ctrl-C
    assert "Traceback" not in err and "stopping" in out
    (listings,) = runs_of(ws, "listings")
    assert listings["status"] == "ABORTED"
    assert pending_outbox(ws) == 0  # its ABORTED event was handed to the engine before exit
    # The workspace is free again: a new runtime starts and has nothing left to do.
    dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws)
    assert [r["status"] for r in runs_of(ws, "listings")] == ["ABORTED"]
