"""`dpc redrive --aws`: Step Functions' RedriveExecution of a pipeline's execution, with the
caller's credentials. moto (5.2.5 here) does not implement RedriveExecution, so Step
Functions is a botocore Stubber with the request and response shapes AWS documents
(*RedriveExecution*, *ListExecutions*, *DescribeExecution* in the Step Functions API
Reference); the Stubber checks every request and response against botocore's model of
the service. Errors are AWS's documented ones (ExecutionNotRedrivable, ...)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from dpc_core import aws_runs
from dpc_core.cli.main import main

REGION = "eu-west-1"
ACCOUNT = "123456789012"
MACHINE = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:listings"
WHEN = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)


def execution(name: str) -> str:
    return f"arn:aws:states:{REGION}:{ACCOUNT}:execution:listings:{name}"


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stubber]:
    client = boto3.client("stepfunctions", region_name=REGION, aws_access_key_id="x",
                          aws_secret_access_key="x")
    stubber = Stubber(client)
    stubber.activate()
    monkeypatch.setattr(aws_runs, "_client", lambda region: (client, ACCOUNT, REGION))
    yield stubber
    stubber.deactivate()


def listed(*names_status: tuple[str, str]) -> dict[str, Any]:
    return {"executions": [{"executionArn": execution(n), "stateMachineArn": MACHINE,
                            "name": n, "status": s, "startDate": WHEN}
                           for n, s in names_status]}


def described(name: str, status: str, day: str) -> dict[str, Any]:
    return {"executionArn": execution(name), "stateMachineArn": MACHINE, "name": name,
            "status": status, "startDate": WHEN,
            "input": json.dumps({"dpc": {"logicalDate": day, "parents": []}})}


def dpc(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        code = main(list(args)) or 0
    except SystemExit as exited:
        code = int(exited.code or 0)
    out = capsys.readouterr()
    return int(code), out.out, out.err


def test_redrive_of_the_run_for_a_date_calls_redrive_execution_on_its_arn(
        stub: Stubber, capsys: pytest.CaptureFixture[str]) -> None:
    stub.add_response("list_executions", listed(("manual-b", "SUCCEEDED"), ("manual-a", "FAILED")),
                      {"stateMachineArn": MACHINE, "maxResults": 100})
    stub.add_response("describe_execution", described("manual-b", "SUCCEEDED", "2026-11-27"),
                      {"executionArn": execution("manual-b")})
    stub.add_response("describe_execution", described("manual-a", "FAILED", "2026-11-26"),
                      {"executionArn": execution("manual-a")})
    stub.add_response("redrive_execution", {"redriveDate": WHEN},
                      {"executionArn": execution("manual-a")})
    code, out, err = dpc(capsys, "redrive", "listings", "--aws", "--date", "2026-11-26",
                         "--format", "json")
    assert code == 0, err
    assert json.loads(out) == {"arn": execution("manual-a"),
                               "redriveDate": WHEN.isoformat(),
                               "message": f"redriven {execution('manual-a')}"}
    stub.assert_no_pending_responses()


def test_an_execution_arn_is_redriven_as_given(
        stub: Stubber, capsys: pytest.CaptureFixture[str]) -> None:
    stub.add_response("redrive_execution", {"redriveDate": WHEN},
                      {"executionArn": execution("manual-a")})
    code, out, _ = dpc(capsys, "redrive", "--aws", execution("manual-a"))
    assert code == 0 and out.strip() == f"redriven {execution('manual-a')}"
    stub.assert_no_pending_responses()


def test_aws_refusing_the_redrive_is_one_line_with_exit_2(
        stub: Stubber, capsys: pytest.CaptureFixture[str]) -> None:
    stub.add_response("list_executions", listed(("manual-b", "SUCCEEDED")),
                      {"stateMachineArn": MACHINE, "maxResults": 100})
    stub.add_client_error("redrive_execution", service_error_code="ExecutionNotRedrivable",
                          service_message="Execution is SUCCEEDED and cannot be redriven.",
                          http_status_code=400,
                          expected_params={"executionArn": execution("manual-b")})
    code, _, err = dpc(capsys, "redrive", "--aws", "listings")
    assert code == 2 and "Traceback" not in err
    (line,) = err.strip().splitlines()
    assert "ExecutionNotRedrivable" in line and "SUCCEEDED and cannot be redriven" in line
    assert execution("manual-b") in line


def test_no_execution_for_the_date_is_a_clear_error(
        stub: Stubber, capsys: pytest.CaptureFixture[str]) -> None:
    stub.add_response("list_executions", listed(("manual-b", "FAILED")),
                      {"stateMachineArn": MACHINE, "maxResults": 100})
    stub.add_response("describe_execution", described("manual-b", "FAILED", "2026-11-27"),
                      {"executionArn": execution("manual-b")})
    code, _, err = dpc(capsys, "redrive", "--aws", "listings", "--date", "2026-11-26")
    assert code == 2 and "has no execution for 2026-11-26" in err
    assert len(err.strip().splitlines()) == 1


def test_a_state_machine_arn_is_not_an_execution(
        stub: Stubber, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = dpc(capsys, "redrive", "--aws", MACHINE)
    assert code == 2 and "is not an execution ARN" in err
