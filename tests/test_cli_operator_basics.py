"""Small operator conveniences of the CLI (issue 24, defect 3): one --format vocabulary,
--format json where scripts need it, DPC_WORKSPACE for lineage, a hint on an empty UI.
The real `dpc` in subprocesses over a real workspace."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from local_helpers import DPC, A, dpc, noop_case_study, write_pipeline

DAY = "2026-11-26"


def test_text_is_the_human_format_everywhere_and_table_still_means_it(tmp_path: Path) -> None:
    ws = noop_case_study(tmp_path / "ws")
    dpc("local", "start", "listings", "--date", DAY, "-w", ws)
    for command in (("local", "runs"), ("runs",), ("local", "notifications"),
                    ("local", "status"), ("local", "timeline")):
        as_text = dpc(*command, "-w", ws, "--format", "text")
        assert dpc(*command, "-w", ws, "--format", "table").stdout == as_text.stdout
        assert "[default: text]" in dpc(*command, "--help").stdout
        json.loads(dpc(*command, "-w", ws, "--format", "json").stdout)
    bad = dpc("local", "runs", "-w", ws, "--format", "yaml", check=False)
    assert bad.returncode == 2 and "'text', 'json'" in bad.stderr


def test_validate_timeline_and_backfill_speak_json(tmp_path: Path) -> None:
    ws = noop_case_study(tmp_path / "ws")
    valid = json.loads(dpc("validate", "-w", ws, "--format", "json").stdout)
    assert valid["valid"] is True and valid["problems"] == []
    assert {p["name"] for p in valid["pipelines"]} == {"listings", "searches", "pipeline-x",
                                                      "listings-fallback"}

    started = json.loads(dpc("backfill", "listings", "--from", "2026-11-01", "--to",
                             "2026-11-03", "-w", ws, "--format", "json").stdout)
    assert [d["date"] for d in started["dates"]] == ["2026-11-01", "2026-11-02", "2026-11-03"]
    plan = json.loads(dpc("backfill", "listings", "--from", "2026-11-01", "--to", "2026-11-02",
                          "--dry-run", "-w", ws, "--format", "json").stdout)
    assert plan["dryRun"] is True and len(plan["dates"]) == 2

    dpc("local", "start", "searches", "--date", DAY, "-w", ws)
    timeline = json.loads(dpc("local", "timeline", "-w", ws, "--format", "json").stdout)
    assert any(r["pipeline"] == "searches" and r["logical_date"] == DAY for r in timeline)

    write_pipeline(ws, "broken", A, "steps: [\n")
    bad = dpc("validate", "-w", ws, "--format", "json", check=False)
    assert bad.returncode == 2
    report = json.loads(bad.stdout)
    assert report["valid"] is False
    (problem,) = report["problems"]
    assert problem["file"].endswith("broken/pipeline.yaml") and problem["line"] >= 1


def test_lineage_reads_the_workspace_of_dpc_workspace(tmp_path: Path) -> None:
    ws = noop_case_study(tmp_path / "ws")
    dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = subprocess.run([DPC, "lineage", "--format", "json"], cwd=elsewhere,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "DPC_WORKSPACE": str(ws)})
    assert proc.returncode == 0, proc.stderr
    names = {n["name"] for n in json.loads(proc.stdout)["nodes"]}
    assert {"listings", "pipeline-x"} <= names


def test_ui_over_a_workspace_never_run_says_how_to_start(tmp_path: Path) -> None:
    ws = noop_case_study(tmp_path / "ws")
    log = tmp_path / "ui.log"
    with log.open("w") as out:
        proc = subprocess.Popen([DPC, "ui", "-w", str(ws), "--port", "0"], stdout=out,
                                stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.monotonic() + 60
            while "Ctrl-C stops" not in log.read_text() and proc.poll() is None \
                    and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    text = log.read_text()
    assert "Ctrl-C stops" in text, text
    assert f"no runs yet: run `dpc local up -w {ws}`" in text


def test_a_file_that_fails_to_parse_gets_one_humane_problem_and_no_echo_in_its_children(
        tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    write_pipeline(ws, "loader", A, "steps:\n  - name: s\n    type: shell\n    command: 'true'\n"
                   "  ? stray line\n")
    write_pipeline(ws, "report", A, "trigger:\n  executions:\n    allOf:\n"
                   "      - {name: loader, status: [SUCCEEDED]}\n"
                   "steps:\n  - {name: s, type: shell, command: 'true'}\n")
    # A child of a pipeline defined in another repository only gets a warning...
    write_pipeline(ws, "other", A, "trigger:\n  executions:\n    allOf:\n"
                   "      - {name: elsewhere, status: [SUCCEEDED]}\n"
                   "steps:\n  - {name: s, type: shell, command: 'true'}\n")
    proc = dpc("validate", str(ws), check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    problems = [x for x in lines if not x.startswith("warning:")]
    assert problems == [
        f"{ws}/{A}-loader/pipeline.yaml:7:3: invalid YAML: a line starting with '? ' does not "
        "fit here (YAML reads it as a complex key); put the text in quotes, or indent the "
        "line like the lines above it"]
    assert "expected <block end>" not in proc.stderr
    # ... and the one whose parent failed to parse gets nothing more (not "defined nowhere").
    warnings = [x for x in lines if x.startswith("warning:")]
    assert len(warnings) == 1 and "'elsewhere'" in warnings[0]


def test_a_run_triggered_through_any_of_names_its_parents_with_or(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    fail = "steps:\n  - {name: s, type: shell, command: 'exit 3'}\n"
    write_pipeline(ws, "feed-a", A, fail)
    write_pipeline(ws, "feed-b", A, fail)
    write_pipeline(ws, "alarm", A, "trigger:\n  rerun: on-new-parent-run\n  executions:\n"
                   "    anyOf:\n      - {name: feed-a, status: [FAILED]}\n"
                   "      - {name: feed-b, status: [FAILED]}\n"
                   "steps:\n  - {name: s, type: shell, command: 'true'}\n")
    dpc("local", "start", "feed-a", "--date", DAY, "-w", ws)
    dpc("local", "start", "feed-b", "--date", DAY, "-w", ws)
    dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws, check=False)
    rows = json.loads(dpc("local", "runs", "--pipeline", "alarm", "-w", ws, "--format",
                          "json").stdout)
    both = [r for r in rows if len(r["parents"]) == 2]
    assert both, rows  # the second failure triggered it again, naming both
    assert " or " in both[0]["why"] and " + " not in both[0]["why"]
    table = dpc("local", "runs", "--pipeline", "alarm", "-w", ws).stdout
    assert " FAILED (" in table and " + " not in table
