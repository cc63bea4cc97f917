"""`dpc run/rerun/runs --aws` start and list a pipeline's Step Functions executions in the
account of the caller's credentials (moto stands in for Step Functions and STS)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner
from moto import mock_aws

from dpc_core.cli.main import cli, main

REGION = "eu-west-1"
ACCOUNT = "123456789012"  # moto's default account
DEFINITION = {"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}


@pytest.fixture
def sfn(aws_credentials: str) -> Iterator[object]:
    with mock_aws():
        client = boto3.client("stepfunctions", region_name=REGION)
        client.create_state_machine(
            name="listings", definition=json.dumps(DEFINITION),
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/sfn")
        yield client


def _executions(client: object) -> list[dict[str, object]]:
    arn = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:listings"
    found = client.list_executions(stateMachineArn=arn)["executions"]  # type: ignore[attr-defined]
    return [client.describe_execution(executionArn=e["executionArn"])  # type: ignore[attr-defined]
            for e in found]


def test_run_on_aws_starts_the_state_machine_with_the_logical_date(sfn: object) -> None:
    result = CliRunner().invoke(cli, ["run", "listings", "--aws", "--date", "2026-11-26"])
    assert result.exit_code == 0, result.output
    (execution,) = _executions(sfn)
    assert json.loads(str(execution["input"]))["dpc"]["logicalDate"] == "2026-11-26"
    assert str(execution["name"]).startswith("manual-2026-11-26-")


def test_rerun_downstream_on_aws_carries_the_flag_for_the_engine(sfn: object) -> None:
    result = CliRunner().invoke(cli, ["rerun", "listings", "--aws", "--date", "2026-11-26",
                                      "--downstream"])
    assert result.exit_code == 0, result.output
    (execution,) = _executions(sfn)
    dpc = json.loads(str(execution["input"]))["dpc"]
    assert dpc["downstream"] is True and dpc["reason"] == "rerun"


def test_runs_on_aws_lists_the_executions(sfn: object) -> None:
    runner = CliRunner()
    runner.invoke(cli, ["run", "listings", "--aws", "--date", "2026-11-25"])
    runner.invoke(cli, ["run", "listings", "--aws", "--date", "2026-11-26"])
    result = runner.invoke(cli, ["runs", "--aws", "--pipeline", "listings"])
    assert result.exit_code == 0, result.output
    assert "manual-2026-11-25-" in result.output and "manual-2026-11-26-" in result.output


def test_runs_on_aws_format_json_gives_name_status_and_times(sfn: object) -> None:
    runner = CliRunner()
    runner.invoke(cli, ["run", "listings", "--aws", "--date", "2026-11-26"])
    result = runner.invoke(cli, ["runs", "--aws", "--pipeline", "listings", "--format", "json"])
    assert result.exit_code == 0, result.output
    [run] = json.loads(result.output)
    assert run["name"].startswith("manual-2026-11-26-")
    assert run["status"] in ("RUNNING", "SUCCEEDED")
    assert run["arn"].startswith(f"arn:aws:states:{REGION}:{ACCOUNT}:execution:listings:")
    assert run["started"] is not None


def test_an_undeployed_pipeline_is_a_clear_error_with_exit_2(
        sfn: object, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["run", "nope", "--aws", "--date", "2026-11-26"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "no pipeline 'nope' deployed" in err and "Traceback" not in err


# -- the region: --region, then AWS_REGION, then boto3's own resolution ----------------------


@pytest.fixture
def no_region(sfn: object, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> object:
    """The moto state machine, with no region in the environment or an AWS profile."""
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    config = tmp_path / "config"
    config.write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    return sfn


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["run", "listings", "--aws", "--date", "2026-11-26",
                                      *args])
    return result.exit_code, result.output


def test_aws_region_alone_is_honoured(no_region: object,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", REGION)
    assert _run()[0] == 0
    assert len(_executions(no_region)) == 1


def test_aws_default_region_alone_is_honoured(no_region: object,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    assert _run()[0] == 0
    assert len(_executions(no_region)) == 1


def test_the_profile_region_is_honoured(no_region: object, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "profile-config"
    config.write_text(f"[default]\nregion = {REGION}\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    assert _run()[0] == 0
    assert len(_executions(no_region)) == 1


def test_the_region_flag_wins_over_aws_region(no_region: object,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "us-east-2")  # no state machine there
    assert _run("--region", REGION)[0] == 0
    assert len(_executions(no_region)) == 1


def test_aws_region_wins_over_aws_default_region(no_region: object,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-2")
    assert _run()[0] == 0
    assert len(_executions(no_region)) == 1


def test_no_region_anywhere_is_a_clear_error_with_exit_2(
        no_region: object, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["run", "listings", "--aws", "--date", "2026-11-26"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no AWS region: pass --region, set AWS_REGION")
    assert "Traceback" not in err
