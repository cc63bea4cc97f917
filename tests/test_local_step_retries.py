"""A step's ``retries:`` and ``timeout:`` in the local runtime: a failed or timed-out
attempt runs again after its backoff, each attempt is in the step's log and on the
console, the timeout ends the step's whole process group, and the run's status is final
only after the last attempt (AWS: test_step_retries_asl.py, test_cdk_sfn_moto.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from local_helpers import A, wait_for, write_pipeline

from dpc_core.local.runtime import Runtime, insert_run


def _run_once(ws: Path, step: str) -> tuple[dict[str, Any], dict[str, Any], str, list[str]]:
    """Run pipeline `p` once with ``step`` (its fields, YAML): (run row, step row, log,
    console lines)."""
    write_pipeline(ws, "p", A, "steps:\n  - name: s\n    type: shell\n" + step)
    lines: list[str] = []
    rt = Runtime(ws, schedules=False, out=lines.append)
    rt.open()
    try:
        rt.start()
        with rt.store.transaction():
            arn = insert_run(rt.store, f"{A}/p", "manual-1", "2026-11-26", "manual")
        assert arn is not None
        rt._submit(arn)
        rt.serve(until_idle=True)
    finally:
        rt.shutdown()
    conn = rt.ws.connect().conn
    run = dict(zip(("status", "error"), conn.execute(
        "SELECT status, error FROM lr_runs WHERE arn = ?", (arn,)).fetchone(), strict=True))
    srow = dict(zip(("status", "attempt", "log_path"), conn.execute(
        "SELECT status, attempt, log_path FROM lr_steps WHERE arn = ?", (arn,)).fetchone(),
        strict=True))
    return run, srow, Path(srow["log_path"]).read_text(), lines


def test_a_failing_step_is_retried_after_its_backoff_until_it_succeeds(tmp_path: Path) -> None:
    count = tmp_path / "count"
    # Fails on its first two attempts, succeeds on the third.
    command = (f"n=$(cat {count} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {count}; "
               "echo try $n; [ $n -ge 3 ]")
    run, step, log, lines = _run_once(
        tmp_path / "ws", f"    command: '{command}'\n    retries:\n      count: 4\n"
                         "      backoff: {initial: 1s, rate: 1.0}\n")
    assert run["status"] == "SUCCEEDED" and run["error"] is None
    assert (step["status"], step["attempt"]) == ("SUCCEEDED", 3)
    assert count.read_text().strip() == "3"
    # Every attempt's output stays in the log, each after the line that names it.
    assert [ln for ln in log.splitlines() if ln.startswith(("try", "dpc:"))] == [
        "try 1", "dpc: waiting 1s before attempt 2 of 5", "dpc: attempt 2 of 5", "try 2",
        "dpc: waiting 1s before attempt 3 of 5", "dpc: attempt 3 of 5", "try 3"]
    retrying = [ln for ln in lines if "RETRYING" in ln]
    assert len(retrying) == 2 and "attempt 3 of 5 in 1s" in retrying[1]
    # The run was RUNNING between the attempts: one final status.
    assert sum("SUCCEEDED" in ln for ln in lines) == 1


def test_the_run_fails_after_the_last_attempt(tmp_path: Path) -> None:
    run, step, log, lines = _run_once(
        tmp_path / "ws", "    command: 'echo no; exit 3'\n    retries: {count: 1, backoff: "
                         "{initial: 1s}}\n")
    assert run["status"] == "FAILED" and "exited with code 3" in (run["error"] or "")
    # As `dpc local runs` shows it: the last attempt's output only, and which attempt.
    assert run["error"] == "step s exited with code 3: no (attempt 2 of 2)"
    assert (step["status"], step["attempt"]) == ("FAILED", 2)
    assert log.count("no\n") == 2
    # FAILED once, after the retry: not when the first attempt failed.
    assert [i for i, ln in enumerate(lines) if "FAILED" in ln] == [len(lines) - 1]
    assert any("RETRYING" in ln for ln in lines)


def test_a_timeout_ends_the_steps_process_group(tmp_path: Path) -> None:
    child = tmp_path / "child.pid"
    # A background child in the step's process group, then a step that outlives its timeout.
    run, step, log, _ = _run_once(
        tmp_path / "ws", f"    command: 'sleep 300 & echo $! > {child}; sleep 300'\n"
                         "    timeout: 1s\n")
    assert run["status"] == "FAILED"
    assert run["error"] == "step s timed out after 1s"
    assert (step["status"], step["attempt"]) == ("TIMED_OUT", 1)
    assert "stopped after the step's timeout" in log
    wait_for(lambda: _gone(int(child.read_text())), "the step's child ended")


def _gone(pid: int) -> bool:
    """The process has ended (a zombie nobody reaped has too)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


@pytest.mark.parametrize("on,command,attempts", [
    ("TIMEOUT", "sleep 300", 2),      # timed out: retried
    ("FAILED", "sleep 300", 1),       # a timeout is not FAILED
    ("TIMEOUT", "exit 1", 1),         # a failure is not TIMEOUT
    ("FAILED", "exit 1", 2),
])
def test_retries_on_names_the_errors_that_are_retried(tmp_path: Path, on: str, command: str,
                                                       attempts: int) -> None:
    run, step, _, _ = _run_once(
        tmp_path / "ws", f"    command: '{command}'\n    timeout: 1s\n    retries: {{count: 1, "
                         f"backoff: {{initial: 1s}}, on: {on}}}\n")
    assert run["status"] == "FAILED"
    assert step["attempt"] == attempts


def test_a_cancel_during_the_backoff_ends_the_run_without_another_attempt(
        tmp_path: Path) -> None:
    import sqlite3
    import threading

    from dpc_core.local import operator
    from dpc_core.local.views import step_logs

    ws = tmp_path / "ws"
    write_pipeline(ws, "p", A, "steps:\n  - name: s\n    type: shell\n    command: 'echo no; "
                   "exit 1'\n    retries: {count: 2, backoff: {initial: 10m}}\n")
    lines: list[str] = []
    rt = Runtime(ws, schedules=False, out=lines.append)
    rt.open()

    def cancel_while_waiting() -> None:
        wait_for(lambda: any("RETRYING" in ln for ln in lines), "the first retry's wait")
        conn = sqlite3.connect(ws / ".dpc" / "state.db", timeout=30)
        with conn:
            operator.request(conn, arn, "tester", "no point")
        conn.close()

    try:
        rt.start()
        with rt.store.transaction():
            arn = insert_run(rt.store, f"{A}/p", "manual-1", "2026-11-26", "manual")
        assert arn is not None
        canceller = threading.Thread(target=cancel_while_waiting)
        canceller.start()
        rt._submit(arn)
        rt.serve(until_idle=True)  # returns long before the 10-minute backoff
        canceller.join()
    finally:
        rt.shutdown()
    store = rt.ws.connect()
    status, = store.conn.execute("SELECT status FROM lr_runs WHERE arn = ?", (arn,)).fetchone()
    assert status == "ABORTED"
    from dpc_core.local.views import find_run

    ((name, step_status, log),) = step_logs(store, find_run(store, arn))
    assert (name, step_status) == ("s", "ABORTED")  # the second attempt never started
    assert log.count("no\n") == 1
    # Nothing left for a recovery to kill: the ended attempt's pid is gone with it.
    assert not list((ws / ".dpc").rglob("*.pid"))
    assert store.conn.execute("SELECT pid FROM lr_steps WHERE arn = ?", (arn,)).fetchone() \
        == (None,)


def test_logs_name_the_attempt_of_a_retried_step(tmp_path: Path) -> None:
    from dpc_core.local.views import find_run, step_logs

    _run_once(tmp_path / "ws", "    command: 'exit 1'\n    retries: {count: 1, backoff: "
                               "{initial: 1s}}\n")
    store = Runtime(tmp_path / "ws", schedules=False).ws.connect()
    (_, status, _), = step_logs(store, find_run(store, "manual-1"))
    assert status == "FAILED, attempt 2"
