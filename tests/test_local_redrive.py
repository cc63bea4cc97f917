"""`dpc local redrive`: a FAILED run runs again from its first step that did not succeed,
under the same ARN with its redrive count + 1, as Step Functions' RedriveExecution does.
The real `dpc` CLI in subprocesses, real shell steps, a real state.db; the engine's own
redrive rules (docs/triggers.md) decide that the child runs on the redriven SUCCEEDED."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from helpers.operate import NO_CREDENTIALS, Up, status
from local_helpers import A, C, dpc, runs_of, wait_for, write_pipeline

DAY = "2026-11-26"


def three_steps_and_child(ws: Path, marks: Path) -> Path:
    """nightly (A): extract (counts its runs in a file), transform (fails while the
    marker file exists), load; report (C) waits on nightly SUCCEEDED."""
    marks.mkdir(parents=True, exist_ok=True)
    (marks / "fail-transform").write_text("x")
    fail = f"test ! -e {marks}/fail-transform"
    write_pipeline(ws, "nightly", A, f"""steps:
  - {{name: extract, type: shell, command: 'echo run >> {marks}/extract'}}
  - {{name: transform, type: shell, command: 'echo run >> {marks}/transform; {fail}'}}
  - {{name: load, type: shell, command: 'echo run >> {marks}/load'}}
""")
    write_pipeline(ws, "report", C, f"""trigger:
  executions:
    allOf:
      - {{name: nightly, account: "{A}", status: [SUCCEEDED]}}
steps:
  - {{name: s, type: shell, command: 'true'}}
""")
    return ws


def count(marks: Path, step: str) -> int:
    f = marks / step
    return len(f.read_text().splitlines()) if f.exists() else 0


def events_of(ws: Path, name: str) -> list[dict[str, Any]]:
    conn = sqlite3.connect(ws / ".dpc" / "state.db")
    rows = [json.loads(p) for (p,) in conn.execute(
        "SELECT payload FROM lr_outbox WHERE kind = 'event' ORDER BY seq")]
    conn.close()
    return [e for e in rows if e["detail"]["stateMachineArn"].endswith(f":{name}")]


def up_until_idle(ws: Path) -> None:
    out = dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws, env=NO_CREDENTIALS,
              check=False)
    assert "Traceback" not in out.stderr


def failed_once(tmp_path: Path) -> tuple[Path, Path, dict[str, Any]]:
    marks = tmp_path / "marks"
    ws = three_steps_and_child(tmp_path / "ws", marks)
    dpc("local", "start", "nightly", "--date", DAY, "-w", ws)
    up_until_idle(ws)
    (run,) = runs_of(ws, "nightly")
    assert run["status"] == "FAILED"
    assert (count(marks, "extract"), count(marks, "transform"), count(marks, "load")) == (1, 1, 0)
    assert runs_of(ws, "report") == []
    (marks / "fail-transform").unlink()
    return ws, marks, run


def check_redriven(ws: Path, marks: Path, run: dict[str, Any]) -> None:
    (after,) = runs_of(ws, "nightly")  # the same run, not a new one
    assert after["arn"] == run["arn"] and after["status"] == "SUCCEEDED"
    assert after["start_ms"] == run["start_ms"]  # a redrive does not move a run
    # extract SUCCEEDED before: not run again; transform and load ran.
    assert (count(marks, "extract"), count(marks, "transform"), count(marks, "load")) == (1, 2, 1)
    seen = [(e["detail"]["status"], e["detail"]["redriveCount"]) for e in events_of(ws, "nightly")]
    assert seen == [("RUNNING", 0), ("FAILED", 0), ("RUNNING", 1), ("SUCCEEDED", 1)]
    assert {e["detail"]["executionArn"] for e in events_of(ws, "nightly")} == {run["arn"]}
    listed = json.loads(dpc("local", "runs", "--pipeline", "nightly", "--format", "json",
                            "-w", ws).stdout)
    assert [(r["arn"], r["redrive_count"]) for r in listed] == [(run["arn"], 1)]
    (child,) = runs_of(ws, "report")  # the engine's rule: triggered on the redriven SUCCEEDED
    assert child["status"] == "SUCCEEDED"


def test_redrive_without_a_runtime_is_queued_and_runs_from_the_failed_step(
        tmp_path: Path) -> None:
    ws, marks, run = failed_once(tmp_path)
    out = dpc("local", "redrive", "nightly", "--date", DAY, "-w", ws, "--format", "json",
              env={"DPC_USER": "alice"})
    result = json.loads(out.stdout)
    assert result["redriveCount"] == 1 and result["priorStatus"] == "FAILED"
    assert result["by"] == "alice" and result["arn"] == run["arn"]
    up_until_idle(ws)
    check_redriven(ws, marks, run)
    # The failed attempt's log is kept beside the redriven one's.
    kept = list((ws / ".dpc" / "runs").rglob("01-transform.before-redrive-1.log"))
    assert len(kept) == 1 and list(kept[0].parent.glob("01-transform.log"))
    # Succeeded now: refused, one line, exit 2, nothing changed.
    again = dpc("local", "redrive", run["run_id"], "-w", ws, check=False)
    assert again.returncode == 2 and "Traceback" not in again.stderr
    assert "succeeded" in again.stderr and len(again.stderr.strip().splitlines()) == 1
    assert runs_of(ws, "nightly")[0]["status"] == "SUCCEEDED"


def test_redrive_with_the_runtime_up_is_picked_up_at_once(tmp_path: Path) -> None:
    ws, marks, run = failed_once(tmp_path)
    up = Up(ws, tmp_path / "up.log")
    try:
        wait_for(lambda: (ws / ".dpc").exists() and "ready" in up.log.read_text().lower(),
                 "runtime ready")
        dpc("local", "redrive", run["run_id"], "-w", ws)
        wait_for(lambda: runs_of(ws, "report") and status(ws, "report") == "SUCCEEDED",
                 "the child ran on the redriven SUCCEEDED")
    finally:
        up.stop()
    check_redriven(ws, marks, run)


def test_a_running_or_pending_run_is_refused(tmp_path: Path) -> None:
    ws = three_steps_and_child(tmp_path / "ws", tmp_path / "marks")
    dpc("local", "start", "nightly", "--date", DAY, "-w", ws)
    out = dpc("local", "redrive", "nightly", "-w", ws, check=False)
    assert out.returncode == 2 and "is still PENDING" in out.stderr
    assert "Traceback" not in out.stderr
    assert runs_of(ws, "nightly")[0]["status"] == "PENDING"


def test_a_cancelled_run_redriven_keeps_the_cancel_on_record(tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    ws = three_steps_and_child(tmp_path / "ws", marks)
    (marks / "fail-transform").unlink()
    dpc("local", "start", "nightly", "--date", DAY, "-w", ws)
    dpc("local", "cancel", "nightly", "-w", ws, "--reason", "wrong input",
        env={"DPC_USER": "bob"})
    assert runs_of(ws, "nightly")[0]["status"] == "ABORTED"
    dpc("local", "redrive", "nightly", "-w", ws)
    up_until_idle(ws)
    (run,) = runs_of(ws, "nightly")
    assert run["status"] == "SUCCEEDED"
    assert (count(marks, "extract"), count(marks, "transform"), count(marks, "load")) == (1, 1, 1)
    conn = sqlite3.connect(ws / ".dpc" / "state.db")
    (row,) = conn.execute("SELECT count, prior_status, prior_error FROM lr_redrives").fetchall()
    conn.close()
    assert row == (1, "ABORTED", "cancelled by bob: wrong input")
