"""Conventions every command keeps: `-w/--workspace` wherever a workspace is read,
`--format json` on what scripts read, and `dpc local logs --follow`.

The JSON is checked on a real workspace run by the real `dpc local up` (the case study's
four pipelines with no-op shell steps).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import click
import pytest

from dpc_core.cli.main import all_commands, cli
from tests.local_helpers import (
    CASE_STUDY_EVENTS,
    DPC,
    A,
    dpc,
    noop_case_study,
    runs,
    write_pipeline,
)

DAY = "2026-11-26"

#: Every command that reads a workspace (a directory of projects or its .dpc state).
WORKSPACE_COMMANDS = [
    ("validate",), ("simulate",), ("lineage",), ("run",), ("start",), ("runs",), ("rerun",),
    ("status",), ("local", "up"), ("local", "start"), ("local", "runs"),
    ("local", "timeline"), ("local", "logs"), ("local", "status"), ("local", "inject"),
]


def _command(path: tuple[str, ...]) -> click.Command:
    ctx = click.Context(cli)
    cmd = cli.get_command(ctx, path[0])
    for part in path[1:]:
        assert isinstance(cmd, click.Group)
        cmd = cmd.get_command(ctx, part)
    assert cmd is not None, path
    return cmd


@pytest.mark.parametrize("path", WORKSPACE_COMMANDS, ids=" ".join)
def test_every_command_that_reads_a_workspace_takes_w_and_workspace(
    path: tuple[str, ...],
) -> None:
    opts = {o for p in _command(path).params for o in p.opts}
    assert {"-w", "--workspace"} <= opts


def test_the_workspace_commands_list_is_complete() -> None:
    # A new command that takes --workspace must take -w too (and be listed above).
    for name in all_commands():
        if name in ("synth", "deploy", "destroy", "setup-central-account",
                    "setup-user-account"):
            continue  # these read one project (-p), not a workspace
        cmd = _command((name,))
        subs = list(cmd.commands.values()) if isinstance(cmd, click.Group) else [cmd]
        for sub in subs:
            opts = {o for p in sub.params for o in p.opts}
            if "--workspace" in opts:
                assert "-w" in opts, f"{name} {sub.name}: --workspace without -w"


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The no-op case study, run: listings and searches by hand, pipeline-x triggered."""
    root = noop_case_study(tmp_path_factory.mktemp("ws"))
    dpc("local", "start", "listings", "--date", DAY, "-w", root)
    dpc("local", "start", "searches", "--date", DAY, "-w", root)
    dpc("local", "up", "--until-idle", "--no-schedule", "-w", root)
    return root


def _json(*args: object) -> Any:
    return json.loads(dpc(*args).stdout)


@pytest.mark.parametrize("command", [("local", "runs"), ("runs",)], ids=" ".join)
def test_runs_format_json_lists_each_run_with_status_and_why(
    ws: Path, command: tuple[str, ...]
) -> None:
    data = _json(*command, "-w", ws, "--format", "json")
    by_name = {r["pipeline"]: r for r in data}
    assert set(by_name) == {"listings", "searches", "pipeline-x"}
    assert {r["status"] for r in data} == {"SUCCEEDED"}
    x = by_name["pipeline-x"]
    assert (x["reason"], x["logical_date"], x["account"]) == ("trigger", DAY, "333333333333")
    assert x["why"].startswith("triggered by listings@111111111111 SUCCEEDED")
    assert x["started"].endswith("+00:00") and x["duration_s"] >= 0


def test_local_status_format_json_says_which_child_waits_on_which_parent(ws: Path) -> None:
    data = _json("local", "status", "--date", DAY, "-w", ws, "--format", "json")
    assert data["date"] == DAY
    latest = {p["pipeline"]: p["run"] and p["run"]["status"] for p in data["pipelines"]}
    assert latest == {"listings": "SUCCEEDED", "searches": "SUCCEEDED",
                      "pipeline-x": "SUCCEEDED", "listings-fallback": None}
    x = next(c for c in data["conditions"] if c["pipeline"] == "pipeline-x")
    assert x["triggered"] is True
    assert {(p["pipeline"], p["current"], p["holds"]) for p in x["parents"]} == {
        ("listings", "SUCCEEDED", True), ("searches", "SUCCEEDED", True)}


def test_lineage_format_json_is_the_graph(ws: Path) -> None:
    data = _json("lineage", "-w", ws, "--date", DAY, "--format", "json")
    nodes = {n["name"]: n for n in data["nodes"]}
    assert nodes["pipeline-x"]["status"] == "SUCCEEDED"
    edges = {(e["parent"], e["child"]) for e in data["edges"]}
    assert (f"{A}/listings", "333333333333/pipeline-x") in edges


def test_validate_reads_the_workspace_given_with_w(ws: Path) -> None:
    assert "4 pipeline(s) valid" in dpc("validate", "-w", ws).stdout


def test_simulate_reads_the_pipelines_of_the_workspace_given_with_w(ws: Path) -> None:
    proc = dpc("simulate", "-w", ws, "--events", CASE_STUDY_EVENTS / "s01_happy_path.jsonl",
               "--format", "json")
    decisions = [json.loads(line) for line in proc.stdout.splitlines()]
    assert any("pipeline-x" in json.dumps(d) for d in decisions)


# -- dpc local logs --follow ------------------------------------------------------------------


def test_logs_follow_tails_a_running_run_until_it_ends(tmp_path: Path) -> None:
    write_pipeline(tmp_path, "slow", A, "steps:\n  - name: count\n    type: shell\n"
                   "    command: 'for i in 1 2 3 4; do echo line-$i; sleep 0.5; done'\n")
    dpc("local", "start", "slow", "--date", DAY, "-w", tmp_path)
    up = subprocess.Popen([DPC, "local", "up", "--until-idle", "--no-schedule", "-w",
                           str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if (tmp_path / ".dpc" / "state.db").exists() and any(
                    r["status"] == "RUNNING" for r in runs(tmp_path)):
                break
            time.sleep(0.05)
        [run] = runs(tmp_path)
        assert run["status"] == "RUNNING"
        proc = dpc("local", "logs", run["run_id"], "--follow", "-w", tmp_path, timeout=60)
        [after] = runs(tmp_path)
    finally:
        up.wait(timeout=60)
    lines = proc.stdout.splitlines()
    assert [ln for ln in lines if ln.startswith("line-")] == [
        "line-1", "line-2", "line-3", "line-4"]
    assert lines[-1] == "# SUCCEEDED"
    assert after["status"] == "SUCCEEDED"


def test_logs_follow_of_a_finished_run_prints_it_and_returns(ws: Path) -> None:
    run_id = next(r["run_id"] for r in runs(ws) if r["name"] == "listings")
    out = dpc("local", "logs", run_id, "--follow", "-w", ws, timeout=30).stdout
    assert out.splitlines()[0].startswith(f"# listings@{A} {run_id}")
    assert out.splitlines()[-1] == "# SUCCEEDED"


@pytest.mark.parametrize("args", [
    ("local", "runs"), ("local", "up", "--until-idle"), ("local", "start", "listings"),
    ("validate",), ("backfill", "listings", "--from", DAY, "--to", DAY), ("lineage",),
    ("local", "inject", "--events", "/dev/null"), ("status", "--date", DAY),
], ids=" ".join)
def test_a_workspace_that_does_not_exist_is_refused_not_created(
        tmp_path: Path, args: tuple[str, ...]) -> None:
    """`-w /typo` started an empty workspace of its own (and its state.db)."""
    typo = tmp_path / "typo"
    proc = dpc(*args, "-w", typo, check=False)
    assert proc.returncode == 2
    assert f"Directory '{typo}' does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not typo.exists()


@pytest.mark.parametrize("day", ["2026-W48-4", "20261126", "2026-330", "2026-11-26T03:00",
                                 "２０２６-11-26"])
def test_dates_are_written_yyyy_mm_dd_only(ws: Path, day: str) -> None:
    """date.fromisoformat takes ISO week dates and basic forms; every message says
    YYYY-MM-DD, so only that is taken."""
    for args in (("local", "status", "--date", day), ("lineage", "--date", day),
                 ("backfill", "listings", "--from", day, "--to", DAY)):
        proc = dpc(*args, "-w", ws, check=False)
        assert proc.returncode == 2, (args, proc.stdout)
        assert "YYYY-MM-DD" in proc.stderr and repr(day) in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
