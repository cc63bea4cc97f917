"""`dpc backfill`: one run per logical date, children per date through the engine, at most
N at once, resumable, a dry-run plan; on the local runtime (real CLI, real shell steps,
real state.db) and on AWS (moto's Step Functions)."""

from __future__ import annotations

import itertools
import json
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner
from local_helpers import (
    DPC,
    SHELL_CASE_STUDY,
    A,
    C,
    copy_workspace,
    dpc,
    listings_and_child,
    runs,
    runs_of,
    wait_for,
    write_pipeline,
)
from moto import mock_aws

from dpc_core.cli.main import cli

DAYS = ["2026-11-24", "2026-11-25", "2026-11-26"]


def _backfill(ws: Path, *extra: str, env: dict[str, str] | None = None,
              check: bool = True) -> str:
    return dpc("backfill", "listings", "--from", DAYS[0], "--to", DAYS[-1], *extra, "-w", ws,
               env=env, check=check).stdout


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    ws = copy_workspace(SHELL_CASE_STUDY, tmp_path / "ws")
    for day in DAYS:  # searches has run for each date: pipeline-x waits on listings only
        dpc("local", "start", "searches", "--date", day, "-w", ws)
    return ws


def test_a_backfill_runs_each_date_once_and_children_follow_per_date(ws: Path) -> None:
    out = _backfill(ws, "--max-parallel", "1")
    assert [line.split()[:3] for line in out.splitlines()[1:4]] == [
        [d, "to", "run"] for d in DAYS]
    dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws)
    listings = runs_of(ws, "listings")
    assert sorted(r["logical_date"] for r in listings) == DAYS
    assert {r["status"] for r in listings} == {"SUCCEEDED"}
    x = runs_of(ws, "pipeline-x")
    assert sorted(r["logical_date"] for r in x) == DAYS  # once per date, by the engine
    assert all(r["reason"] == "trigger" for r in x)
    # --max-parallel 1: each backfill run started after the one before had ended.
    spans = sorted((r["start_ms"], r["stop_ms"]) for r in listings)
    assert all(later[0] >= earlier[1] for earlier, later in itertools.pairwise(spans))

    status = json.loads(dpc("local", "status", "--date", DAYS[0], "--format", "json",
                            "-w", ws).stdout)
    (bf,) = status["backfills"]
    assert [d["status"] for d in bf["dates"]] == ["SUCCEEDED"] * 3
    lineage = dpc("lineage", "-w", ws).stdout
    assert f"{DAYS[0]} SUCCEEDED  {DAYS[1]} SUCCEEDED  {DAYS[2]} SUCCEEDED" in lineage


def test_the_same_command_again_starts_only_what_is_not_done(ws: Path) -> None:
    _backfill(ws)
    dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws, env={"LISTINGS_FAIL": "1"},
        check=False)
    assert {r["status"] for r in runs_of(ws, "listings")} == {"FAILED"}
    again = _backfill(ws)
    assert again.count("attempt 2") == 3  # the failed dates are tried again
    dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws)
    assert sorted((r["logical_date"], r["status"]) for r in runs_of(ws, "listings")) == sorted(
        [(d, "FAILED") for d in DAYS] + [(d, "SUCCEEDED") for d in DAYS])

    done = _backfill(ws)
    assert done.count("SUCCEEDED") >= 3 and "to run" not in done
    dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws)
    assert len(runs_of(ws, "listings")) == 6  # nothing new was started
    assert sorted(r["logical_date"] for r in runs_of(ws, "pipeline-x")) == DAYS


def test_dry_run_prints_the_plan_per_date_and_account_and_starts_nothing(ws: Path) -> None:
    out = _backfill(ws, "--dry-run")
    assert f"{DAYS[1]}  run  listings (111111111111)" in out
    assert f"{DAYS[1]}  then pipeline-x ({C}) when its condition holds for {DAYS[1]}" in out
    assert f"{DAYS[1]}  then listings-fallback ({C})" in out
    assert "nothing was started" in out
    dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws)
    assert runs_of(ws, "listings") == []


@pytest.mark.parametrize(("first", "last", "says"), [
    ("2026-11-26", "2026-11-24", "is before --from"),
    ("2026-13-01", "2026-11-24", "YYYY-MM-DD"),
])
def test_a_bad_range_is_one_clear_error(ws: Path, first: str, last: str, says: str) -> None:
    proc = dpc("backfill", "listings", "--from", first, "--to", last, "-w", ws, check=False)
    assert proc.returncode == 2 and says in proc.stderr and "Traceback" not in proc.stderr


def test_an_unknown_pipeline_is_refused_with_the_nearest_name(ws: Path) -> None:
    proc = dpc("backfill", "listing", "--from", DAYS[0], "--to", DAYS[0], "-w", ws, check=False)
    assert proc.returncode == 2 and "did you mean 'listings'" in proc.stderr


# -- interruptions and overlaps ---------------------------------------------------------

RANGE = [f"2026-10-{d:02d}" for d in range(1, 21)]


def _chain(ws: Path, parent_s: float, child_s: float) -> Path:
    """listings and its child, each a step sleeping that long."""
    return listings_and_child(ws, f"sleep {parent_s}", f"sleep {child_s}")


def _running(ws: Path, name: str) -> bool:
    return any(r["status"] == "RUNNING" for r in runs_of(ws, name))


def test_a_backfill_resumed_after_crashes_leaves_no_child_undone(tmp_path: Path) -> None:
    """Interrupt the runtime six times (kill -9 and Ctrl-C, while a parent runs, while a
    child runs, at a seeded random moment), re-running the same `dpc backfill` / `dpc
    local up` each time: every date ends with its parent and its child SUCCEEDED, once."""
    ws = _chain(tmp_path / "ws", 0.2, 0.8)
    rng = random.Random(21)
    points = [("child", signal.SIGKILL), ("parent", signal.SIGKILL), ("child", signal.SIGINT),
              ("random", signal.SIGKILL), ("child", signal.SIGKILL), ("parent", signal.SIGINT)]
    interrupted = 0
    for point, sig in points:
        dpc("backfill", "listings", "--from", RANGE[0], "--to", RANGE[-1], "-w", ws)
        proc = subprocess.Popen([DPC, "local", "up", "--no-schedule", "-w", str(ws)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            if point == "random":
                time.sleep(rng.uniform(0.5, 3.0))
            else:
                name = "child" if point == "child" else "listings"
                wait_for(lambda name=name: _running(ws, name), f"{name} RUNNING")
                time.sleep(rng.uniform(0.0, 0.15))
            proc.send_signal(sig)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        interrupted += sum(1 for r in runs(ws) if r["status"] in ("ABORTED", "FAILED"))
    assert interrupted, "no run was interrupted: the test did not test anything"
    dpc("backfill", "listings", "--from", RANGE[0], "--to", RANGE[-1], "-w", ws)
    dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws, timeout=240)

    everything = runs(ws)
    for name in ("listings", "child"):
        succeeded = sorted(r["logical_date"] for r in everything
                           if r["name"] == name and r["status"] == "SUCCEEDED")
        assert succeeded == RANGE, f"{name}: {succeeded}"  # every date, once
    # What the crashes ended was marked interrupted, and each was run again.
    ended = [r for r in everything if r["status"] in ("ABORTED", "FAILED")]
    assert ended and all(r["interrupted"] == 2 for r in ended), ended


def test_the_same_command_says_that_interrupted_children_will_run_again(
        tmp_path: Path) -> None:
    ws = _chain(tmp_path / "ws", 0, 30)
    dpc("backfill", "listings", "--from", RANGE[0], "--to", RANGE[0], "-w", ws)
    proc = subprocess.Popen([DPC, "local", "up", "--no-schedule", "-w", str(ws)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: _running(ws, "child"), "child RUNNING")
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C: the child ends ABORTED
        proc.wait(timeout=60)
    assert [r["status"] for r in runs_of(ws, "child")] == ["ABORTED"]
    out = dpc("backfill", "listings", "--from", RANGE[0], "--to", RANGE[0], "-w", ws).stdout
    assert f"{RANGE[0]}  SUCCEEDED" in out
    assert "1 run(s) of its dates (children included) were interrupted" in out


def test_a_child_that_failed_for_real_is_not_run_again_by_itself(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    write_pipeline(ws, "listings", A, "steps:\n  - {name: s, type: shell, command: 'true'}\n")
    write_pipeline(ws, "child", C, f"""trigger:
  executions:
    allOf:
      - {{name: listings, account: "{A}", status: [SUCCESS]}}
steps:
  - {{name: s, type: shell, command: 'exit 3'}}
""")
    dpc("backfill", "listings", "--from", DAYS[0], "--to", DAYS[0], "-w", ws)
    dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws, check=False)
    dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws, check=False)
    assert [r["status"] for r in runs_of(ws, "child")] == ["FAILED"]


def test_overlapping_backfills_run_each_date_once(tmp_path: Path) -> None:
    ws = _chain(tmp_path / "ws", 0, 0)
    for first, last in (("01", "10"), ("05", "15"), ("08", "20")):
        dpc("backfill", "listings", "--from", f"2026-10-{first}", "--to", f"2026-10-{last}",
            "-w", ws)
    dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws, timeout=240)
    for name in ("listings", "child"):
        assert sorted(r["logical_date"] for r in runs_of(ws, name)) == RANGE, name
        assert {r["status"] for r in runs_of(ws, name)} == {"SUCCEEDED"}
    status = json.loads(dpc("local", "status", "--date", RANGE[0], "--format", "json",
                            "-w", ws).stdout)
    assert [set(d["status"] for d in b["dates"]) for b in status["backfills"]] == [
        {"SUCCEEDED"}] * 3


def test_a_backfill_takes_a_date_already_running_as_its_own(tmp_path: Path) -> None:
    ws = _chain(tmp_path / "ws", 0, 0)
    dpc("local", "start", "listings", "--date", RANGE[0], "-w", ws)  # PENDING, by hand
    out = dpc("backfill", "listings", "--from", RANGE[0], "--to", RANGE[1], "-w", ws).stdout
    assert f"{RANGE[0]}  PENDING" in out
    dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws)
    assert sorted(r["logical_date"] for r in runs_of(ws, "listings")) == RANGE[:2]


def test_a_downstream_backfill_does_not_take_a_run_that_leaves_children_alone(
        tmp_path: Path) -> None:
    ws = _chain(tmp_path / "ws", 0, 0)
    dpc("backfill", "listings", "--from", RANGE[0], "--to", RANGE[0], "-w", ws)
    dpc("backfill", "listings", "--from", RANGE[0], "--to", RANGE[0], "-w", ws)  # the same
    dpc("backfill", "listings", "--from", RANGE[0], "--to", RANGE[0], "--downstream", "-w", ws)
    dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws)
    # One plain run (the first two commands are one backfill) and one that re-runs the
    # children: the pending plain run is not taken for the --downstream backfill's date.
    assert sorted(r["downstream"] for r in runs_of(ws, "listings")) == [0, 1]


# -- AWS -------------------------------------------------------------------------------

REGION = "eu-west-1"
ACCOUNT = "123456789012"  # moto's default account
SM = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:listings"


@pytest.fixture
def sfn(aws_credentials: str) -> Iterator[object]:
    with mock_aws():
        client = boto3.client("stepfunctions", region_name=REGION)
        client.create_state_machine(
            name="listings", roleArn=f"arn:aws:iam::{ACCOUNT}:role/sfn",
            definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}))
        yield client


def _aws(*extra: str) -> str:
    result = CliRunner().invoke(cli, ["backfill", "listings", "--aws", "--region", REGION,
                                      "--from", DAYS[0], "--to", DAYS[-1], *extra])
    assert result.exit_code == 0, result.output
    return result.output


def _names(client: object) -> list[str]:
    found = client.list_executions(stateMachineArn=SM)["executions"]  # type: ignore[attr-defined]
    return sorted(e["name"] for e in found)


def test_aws_backfill_names_runs_by_date_and_is_idempotent(sfn: object) -> None:
    out = _aws("--max-parallel", "2")
    assert _names(sfn) == ["backfill-2026-11-24-a1", "backfill-2026-11-25-a1"]
    assert "waiting" in out.splitlines()[-1]
    execution = sfn.describe_execution(  # type: ignore[attr-defined]
        executionArn=f"arn:aws:states:{REGION}:{ACCOUNT}:execution:listings:"
                     "backfill-2026-11-24-a1")
    assert json.loads(execution["input"])["dpc"]["logicalDate"] == "2026-11-24"

    _aws("--max-parallel", "2")  # both still running: nothing more
    assert len(_names(sfn)) == 2
    sfn.stop_execution(  # type: ignore[attr-defined]
        executionArn=f"arn:aws:states:{REGION}:{ACCOUNT}:execution:listings:"
                     "backfill-2026-11-24-a1")
    _aws("--max-parallel", "2")  # one slot free: the aborted date gets attempt 2 first
    assert _names(sfn) == ["backfill-2026-11-24-a1", "backfill-2026-11-24-a2",
                           "backfill-2026-11-25-a1"]


def test_aws_dry_run_starts_nothing(sfn: object) -> None:
    out = _aws("--dry-run", "--downstream")
    assert f"would start backfill-{DAYS[2]}-a1 in {ACCOUNT}" in out
    assert _names(sfn) == []
