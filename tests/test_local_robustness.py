"""The local runtime under change and trouble: the workspace edited while it runs, unknown
names, failed runs, stop signals, bad items in its queues, bad input lines. Real `dpc`
processes, real SQLite, real signals."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from local_helpers import (
    CASE_STUDY_EVENTS,
    DPC,
    A,
    C,
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



class Up:
    """`dpc local up` in the background, its console in a file."""

    def __init__(self, ws: Path, log: Path, *args: str,
                 preexec: Callable[[], None] | None = None) -> None:
        self.log = log
        self.out = log.open("w")
        self.proc = subprocess.Popen([DPC, "local", "up", "--no-schedule", "-w", str(ws), *args],
                                     stdout=self.out, stderr=subprocess.STDOUT, text=True,
                                     preexec_fn=preexec)
        wait_for(lambda: "ready in" in self.text() or self.proc.poll() is not None,
                 "the runtime is ready")

    def text(self) -> str:
        return self.log.read_text()

    def stop(self, sig: int = signal.SIGINT) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGUSR1)  # the runtime prints its threads' stacks
            time.sleep(1)
            raise AssertionError("the runtime did not stop:\n" + self.text()) from None
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self.out.close()


def status_of(ws: Path, name: str) -> str | None:
    try:
        rs = runs_of(ws, name)
    except sqlite3.OperationalError:
        return None
    return rs[-1]["status"] if rs else None


# -- the runtime follows the workspace --------------------------------------------------

def test_a_project_created_while_up_runs_is_run_by_dpc_run(tmp_path: Path) -> None:
    ws = noop_case_study(tmp_path / "ws")
    up = Up(ws, tmp_path / "up.log")
    try:
        subprocess.run([DPC, "create-project", "-n", "extra"], cwd=ws, check=True,
                       capture_output=True)
        out = dpc("run", "extra", "--date", DAY, "-w", ws).stdout
        assert "started by the running runtime" in out
        wait_for(lambda: status_of(ws, "extra") in {"SUCCEEDED", "FAILED"}, "extra finished")
    finally:
        assert up.stop() == 130  # Ctrl-C
    (extra,) = runs_of(ws, "extra")
    assert extra["status"] == "SUCCEEDED", extra["error"]
    assert "KeyError" not in up.text()
    logs = dpc("local", "logs", extra["run_id"], "-w", ws).stdout
    assert "## step" in logs


def test_an_edit_takes_effect_and_an_invalid_edit_keeps_the_last_good_definition(
        tmp_path: Path) -> None:
    ws = noop_case_study(tmp_path / "ws")
    up = Up(ws, tmp_path / "up.log")
    try:
        write_pipeline(ws, "listings", A, "steps:\n  - {name: s, type: shell, "
                       "command: 'echo version-two'}\n")
        wait_for(lambda: "~111111111111/listings" in up.text(), "the edit applied")
        dpc("local", "start", "listings", "--date", DAY, "-w", ws)
        wait_for(lambda: status_of(ws, "listings") == "SUCCEEDED", "listings ran")
        first = runs_of(ws, "listings")[0]["run_id"]
        assert "version-two" in dpc("local", "logs", first, "-w", ws).stdout

        # An invalid edit: reported as FILE:LINE:COL, the runtime goes on with version two.
        project = ws / f"{A}-listings" / "pipeline.yaml"
        project.write_text(project.read_text() + "bogus: 1\n")
        wait_for(lambda: f"{project}:5:1: bogus: unknown field" in up.text(),
                 "the invalid edit reported")
        # A tag that does not fit its value (a KeyError inside PyYAML): FILE:LINE:COL too.
        project.write_text(project.read_text().replace("bogus: 1\n",
                                                       "description: !!bool maybe\n"))
        wait_for(lambda: f"{project}:5:14: invalid YAML: cannot read 'maybe' as !!bool"
                 in up.text(), "the badly tagged edit reported")
        dpc("local", "start", "listings", "--date", "2026-11-27", "-w", ws)
        wait_for(lambda: len([r for r in runs_of(ws, "listings")
                              if r["status"] == "SUCCEEDED"]) == 2, "listings ran again")
        second = runs_of(ws, "listings")[1]["run_id"]
        assert "version-two" in dpc("local", "logs", second, "-w", ws).stdout
        # listings still triggers its children: the registry kept it.
        assert status_of(ws, "listings-fallback") is None
    finally:
        assert up.stop() == 130  # Ctrl-C
    assert "Traceback" not in up.text()


def test_an_edit_with_a_misspelled_parent_is_refused_while_up_runs(tmp_path: Path) -> None:
    ws = noop_case_study(tmp_path / "ws")
    up = Up(ws, tmp_path / "up.log")
    project = ws / f"{C}-pipeline-x" / "pipeline.yaml"
    try:
        # `listingss`: one letter away from listings of account A, which the workspace
        # defines: the check `dpc validate` and the start-up make, applied to the edit.
        project.write_text(project.read_text().replace("{name: listings,",
                                                       "{name: listingss,"))
        wait_for(lambda: "did you mean 'listings'" in up.text(), "the typo reported")
        assert f"{project}:7:" in up.text()
        # The last good definition stays in force: pipeline-x still waits on listings.
        dpc("local", "start", "listings", "--date", DAY, "-w", ws)
        dpc("local", "start", "searches", "--date", DAY, "-w", ws)
        wait_for(lambda: status_of(ws, "pipeline-x") == "SUCCEEDED", "pipeline-x ran")
        # Fixing the typo applies the file again.
        project.write_text(project.read_text().replace("listingss", "listings") + "\n")
        wait_for(lambda: f"~{C}/pipeline-x" in up.text(), "the fixed file applied")
    finally:
        assert up.stop() == 130  # Ctrl-C
    assert "Traceback" not in up.text()


def test_a_removed_project_is_unregistered_and_refused(tmp_path: Path) -> None:
    ws = noop_case_study(tmp_path / "ws")
    up = Up(ws, tmp_path / "up.log")
    try:
        (ws / f"{C}-listings-fallback" / "pipeline.yaml").unlink()
        wait_for(lambda: f"-{C}/listings-fallback" in up.text(), "the removal applied")
        refused = dpc("run", "listings-fallback", "-w", ws, check=False)
        assert refused.returncode == 2 and "no pipeline 'listings-fallback'" in refused.stderr
    finally:
        assert up.stop() == 130  # Ctrl-C
    conn = sqlite3.connect(ws / ".dpc" / "state.db")
    keys = {k for (k,) in conn.execute("SELECT key FROM pipelines")}
    conn.close()
    assert f"{C}/listings-fallback" not in keys and f"{C}/pipeline-x" in keys


def test_a_project_added_while_up_runs_is_triggered_by_its_parent(tmp_path: Path) -> None:
    ws = noop_case_study(tmp_path / "ws")
    up = Up(ws, tmp_path / "up.log")
    try:
        write_pipeline(ws, "late-child", C, "trigger:\n  executions:\n    allOf:\n"
                       f"      - {{name: listings, account: \"{A}\", status: [SUCCEEDED]}}\n"
                       "steps:\n  - {name: s, type: shell, command: 'true'}\n")
        wait_for(lambda: f"+{C}/late-child" in up.text(), "the new project applied")
        dpc("local", "start", "listings", "--date", DAY, "-w", ws)
        wait_for(lambda: status_of(ws, "late-child") == "SUCCEEDED", "late-child triggered")
    finally:
        assert up.stop() == 130  # Ctrl-C


# -- unknown names, failed runs ---------------------------------------------------------

@pytest.mark.parametrize("command", [("run",), ("local", "start"), ("rerun",)])
def test_an_unknown_pipeline_is_refused_with_the_nearest_name(tmp_path: Path,
                                                               command: tuple[str, ...]) -> None:
    ws = noop_case_study(tmp_path / "ws")
    proc = dpc(*command, "listngs", "--date", DAY, "-w", ws, check=False)
    assert proc.returncode == 2
    assert "did you mean 'listings'?" in proc.stderr and "Traceback" not in proc.stderr
    assert not (ws / ".dpc" / "state.db").exists() or runs(ws) == []


def test_up_until_idle_exits_1_naming_the_runs_that_did_not_succeed(tmp_path: Path) -> None:
    ws = noop_case_study(tmp_path / "ws")
    write_pipeline(ws, "listings", A, "steps:\n  - {name: s, type: shell, command: 'exit 3'}\n")
    dpc("local", "start", "listings", "--date", DAY, "-w", ws)
    dpc("local", "start", "searches", "--date", DAY, "-w", ws)
    proc = dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws, check=False)
    assert proc.returncode == 1
    (listings,) = runs_of(ws, "listings")
    assert "1 run(s) did not succeed" in proc.stderr
    assert f"listings@{A} {listings['run_id']} FAILED" in proc.stderr
    assert "searches" not in proc.stderr  # it succeeded; the fallback too
    assert status_of(ws, "listings-fallback") == "SUCCEEDED"


# -- stop signals -----------------------------------------------------------------------

def _slow_listings(ws: Path) -> None:
    write_pipeline(ws, "listings", A,
                   "steps:\n  - {name: slow, type: shell, command: 'sleep 60'}\n")


def _assert_stopped_cleanly(ws: Path, up: Up, rc: int, sig: int) -> None:
    assert rc == 128 + sig, up.text()  # 130 after Ctrl-C, 143 after SIGTERM
    assert "Traceback" not in up.text() and "stopping" in up.text()
    (listings,) = runs_of(ws, "listings")
    assert listings["status"] == "ABORTED"
    assert pending_outbox(ws) == 0
    dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws)  # the lock is free


def test_sigterm_stops_as_cleanly_as_ctrl_c(tmp_path: Path) -> None:
    ws = noop_case_study(tmp_path / "ws")
    _slow_listings(ws)
    dpc("local", "start", "listings", "--date", DAY, "-w", ws)
    up = Up(ws, tmp_path / "up.log")
    wait_for(lambda: status_of(ws, "listings") == "RUNNING", "listings running")
    _assert_stopped_cleanly(ws, up, up.stop(signal.SIGTERM), signal.SIGTERM)


def test_sigint_stops_cleanly_when_started_with_sigint_ignored(tmp_path: Path) -> None:
    """A shell starts background jobs (`dpc local up &`) with SIGINT ignored."""
    ws = noop_case_study(tmp_path / "ws")
    _slow_listings(ws)
    dpc("local", "start", "listings", "--date", DAY, "-w", ws)
    up = Up(ws, tmp_path / "up.log",
            preexec=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN) and None)
    wait_for(lambda: status_of(ws, "listings") == "RUNNING", "listings running")
    _assert_stopped_cleanly(ws, up, up.stop(signal.SIGINT), signal.SIGINT)


# -- bad items in the runtime's queues, bad input lines ---------------------------------

def test_a_corrupt_queued_item_is_set_aside_and_the_items_after_it_are_processed(
        tmp_path: Path) -> None:
    ws = noop_case_study(tmp_path / "ws")
    dpc("local", "runs", "-w", ws)  # creates the state database
    conn = sqlite3.connect(ws / ".dpc" / "state.db")
    with conn:
        # Not JSON, JSON that is no event, a notification that names no note.
        for kind, payload in (("event", "{not json"), ("event", "[1, 2]"),
                              ("notify", json.dumps({"pipeline": f"{A}/listings"}))):
            conn.execute("INSERT INTO lr_outbox (kind, payload, created_ms) VALUES (?, ?, 0)",
                         (kind, payload))
    conn.close()
    dpc("local", "inject", "--events", CASE_STUDY_EVENTS / "s01_happy_path.jsonl", "-w", ws)
    up = dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws, timeout=120)
    assert "set aside" in up.stdout
    assert [r["status"] for r in runs_of(ws, "pipeline-x")] == ["SUCCEEDED"]
    assert pending_outbox(ws) == 0
    problems = dpc("local", "problems", "-w", ws).stdout
    assert "{not json" in problems and "engine:" in problems and "notifications:" in problems
    assert "set aside after an error" in dpc("local", "status", "--date", DAY, "-w", ws).stdout


def test_events_with_extreme_fields_neither_stop_nor_hang_the_runtime(tmp_path: Path) -> None:
    ws = noop_case_study(tmp_path / "ws")
    good = (CASE_STUDY_EVENTS / "s01_happy_path.jsonl").read_text().splitlines()
    first = json.loads(good[0])
    extreme = []
    for change in ("year", "redrive", "nested"):
        ev = json.loads(json.dumps(first))
        ev["detail"]["name"] = ev["detail"]["executionArn"].rsplit(":", 1)[1] + change
        ev["detail"]["executionArn"] += change
        if change == "year":
            ev["detail"]["startDate"] = 253402300800000 + 1000  # year 10000
        elif change == "redrive":
            ev["detail"]["redriveCount"] = 2 ** 64
        else:
            ev["detail"]["input"] = json.dumps({"dpc": {"logicalDate": DAY},
                                                "x": json.loads("[" * 900 + "]" * 900)})
        extreme.append(json.dumps(ev))
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(extreme + good) + "\n")
    dpc("local", "inject", "--events", events, "-w", ws, check=False)
    dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws, timeout=120)
    assert [r["status"] for r in runs_of(ws, "pipeline-x")] == ["SUCCEEDED"]
    assert pending_outbox(ws) == 0


def test_inject_reports_each_bad_line_and_queues_the_others(tmp_path: Path) -> None:
    ws = noop_case_study(tmp_path / "ws")
    good = (CASE_STUDY_EVENTS / "s01_happy_path.jsonl").read_text().splitlines()
    lines = [good[0], "{oops", good[1], "[1]", *good[2:]]
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(lines) + "\n")
    proc = dpc("local", "inject", "--events", events, "-w", ws, check=False)
    assert proc.returncode == 2
    assert f"{events}:2:" in proc.stderr and f"{events}:4:1:" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"queued {len(good)} event(s)" in proc.stdout
    dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws, timeout=120)
    assert [r["status"] for r in runs_of(ws, "pipeline-x")] == ["SUCCEEDED"]


def test_inject_refuses_an_endless_file_without_reading_it_whole(tmp_path: Path) -> None:
    """/dev/zero has no line end: inject read it whole (10 GB) to report its bad lines."""
    ws = noop_case_study(tmp_path / "ws")
    dpc("local", "runs", "-w", ws)  # creates the state database
    proc = dpc("local", "inject", "--events", "/dev/zero", "-w", ws, check=False, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "/dev/zero:1:1: line longer than 1048576 bytes (an EventBridge event is at most "
        "256 KiB): not an event file")
    assert "Traceback" not in proc.stderr
    assert pending_outbox(ws) == 0


def test_inject_reports_many_bad_lines_in_one_pass(tmp_path: Path) -> None:
    """Each bad line made inject read the whole file again (16,000 of them: 35 s). Their
    count is reported, the first hundred shown, the good lines queued."""
    ws = noop_case_study(tmp_path / "ws")
    good = (CASE_STUDY_EVENTS / "s01_happy_path.jsonl").read_text().splitlines()
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(["{oops"] * 16_000 + good) + "\n")
    proc = dpc("local", "inject", "--events", events, "-w", ws, check=False, timeout=120)
    assert proc.returncode == 2
    err = proc.stderr.splitlines()
    assert err[0] == f"{events}:1:2: invalid JSON: Expecting property name enclosed in " \
        "double quotes"
    assert err[99].startswith(f"{events}:100:2: ")
    assert err[100:] == ["... and 15900 more",
                         "16000 bad line(s) skipped; the other lines were queued"]
    assert f"queued {len(good)} event(s)" in proc.stdout
    assert pending_outbox(ws) == len(good)


def test_the_runtime_reads_unchanged_files_from_its_state_after_a_restart(
        tmp_path: Path) -> None:
    """A restart re-reads only what changed; what it remembered is still checked against
    the files (a file changed while it was down is read again)."""
    ws = noop_case_study(tmp_path / "ws")
    dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws)
    write_pipeline(ws, "listings", A, "steps:\n  - {name: s, type: shell, "
                   "command: 'echo changed-while-down'}\n")
    dpc("local", "start", "listings", "--date", DAY, "-w", ws)
    dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws)
    (listings,) = runs_of(ws, "listings")
    assert "changed-while-down" in dpc("local", "logs", listings["run_id"], "-w", ws).stdout
    os.utime(ws / f"{A}-listings" / "pipeline.yaml")  # same content, new mtime: read again
    dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws)


# -- the trigger path: decided where the parent's end is committed ---------------------

def _in_process(ws: Path, lines: list[str]) -> Any:
    from dpc_core.local.runtime import Runtime

    rt = Runtime(ws, schedules=False, out=lines.append)
    rt.open()
    return rt


def test_a_parents_end_and_the_child_runs_it_starts_are_committed_together(
        tmp_path: Path) -> None:
    """The executor that commits a run's end has the engine decide it in the same
    transaction: with the engine thread kept from deciding anything, pipeline-x is still
    started by its parents' SUCCEEDED (before, each event waited for that thread)."""
    from dpc_core.cli.local import queue_run

    ws = noop_case_study(tmp_path / "ws")
    lines: list[str] = []
    rt = _in_process(ws, lines)

    def no_engine_loop() -> None:  # only the shutdown handshake of the real one
        rt.stopping.wait()
        rt.events_done.set()
        rt.wake_notify.set()

    rt._engine_loop = no_engine_loop  # type: ignore[method-assign]
    try:
        rt.start()
        queue_run(ws, "listings", DAY, "manual")
        queue_run(ws, "searches", DAY, "manual")
        rt._submit_pending()
        wait_for(lambda: status_of(ws, "pipeline-x") == "SUCCEEDED", "pipeline-x succeeded")
    finally:
        rt.shutdown()
    every = {r["name"]: r for r in runs(ws)}
    assert every["pipeline-x"]["reason"] == "trigger"
    assert every["pipeline-x"]["created_ms"] >= max(every["listings"]["stop_ms"],
                                                    every["searches"]["stop_ms"])
    assert pending_outbox(ws) == 0


def test_a_decision_that_fails_where_a_run_ends_neither_fails_the_run_nor_is_lost(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Deciding in the executor's transaction must not turn a failure of the engine into
    a failure of the run that ended: the decision's writes are undone, the run's end is
    kept, and the engine loop sets the event aside (`dpc local problems`)."""
    from dpc_core.cli.local import queue_run
    from dpc_core.local import notices

    real = notices.after_event

    def after_event(store: Any, outcome: Any) -> bool:
        if any(d.pipeline == "pipeline-x" for d in outcome.decisions):
            raise RuntimeError("engine bug while deciding pipeline-x")
        return real(store, outcome)

    monkeypatch.setattr(notices, "after_event", after_event)
    ws = noop_case_study(tmp_path / "ws")
    lines: list[str] = []
    rt = _in_process(ws, lines)
    try:
        rt.start()
        queue_run(ws, "listings", DAY, "manual")
        queue_run(ws, "searches", DAY, "manual")
        rt._submit_pending()
        rt.serve(until_idle=True)
    finally:
        rt.shutdown()
    assert status_of(ws, "listings") == "SUCCEEDED"
    assert status_of(ws, "searches") == "SUCCEEDED"
    assert status_of(ws, "pipeline-x") is None  # its decision was undone, not half-kept
    assert pending_outbox(ws) == 0
    problems = dpc("local", "problems", "-w", ws).stdout
    assert "engine bug while deciding pipeline-x" in problems
    assert not any("internal error" in line for line in lines), lines
