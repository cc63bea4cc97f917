"""`dpc backfill`: one run per logical date, children per date through the engine, at most
N at once, resumable, a dry-run plan; on the local runtime (real CLI, real shell steps,
real state.db) and on AWS (moto's Step Functions)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner
from local_helpers import SHELL_CASE_STUDY, C, copy_workspace, dpc, runs_of
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
