"""`dpc lineage --central` reads the central account's registry and run log (DynamoDB,
under moto here), found by the outputs of the dpc-central stack or given by name."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner
from moto import mock_aws

from dpc_central.testing import central_engine_with_listings_succeeded
from dpc_core.cli.main import cli

SPEC = Path(__file__).resolve().parents[1] / "examples" / "seed"
REGION = "eu-west-1"


@pytest.fixture
def central(aws_credentials: str) -> Iterator[None]:
    with mock_aws():
        central_engine_with_listings_succeeded(boto3.client("dynamodb", region_name=REGION),
                                               SPEC)
        yield


def test_lineage_of_the_central_registry_by_table_names(central: None) -> None:
    result = CliRunner().invoke(cli, ["lineage", "--central", "--central-tables",
                                      "dpc-registry,dpc-runs,dpc-windows", "--region", REGION,
                                      "--date", "2026-11-26"])
    assert result.exit_code == 0, result.output
    assert "4 pipeline(s) in 3 account(s)" in result.output
    assert "listings [111111111111]" in result.output and "SUCCEEDED" in result.output
    assert "pipeline-x [333333333333]" in result.output


def test_lineage_finds_the_tables_through_the_central_stack_outputs(central: None) -> None:
    template = {"Resources": {"H": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
                "Outputs": {k: {"Value": v} for k, v in (
                    ("RegistryTable", "dpc-registry"), ("RunsTable", "dpc-runs"),
                    ("WindowsTable", "dpc-windows"))}}
    boto3.client("cloudformation", region_name=REGION).create_stack(
        StackName="dpc-central", TemplateBody=json.dumps(template))
    result = CliRunner().invoke(cli, ["lineage", "--central", "--format", "mermaid",
                                      "--date", "2026-11-26"])
    assert result.exit_code == 0, result.output
    assert "pipeline-x" in result.output and "flowchart" in result.output


def test_lineage_without_a_central_stack_says_what_to_do(central: None) -> None:
    from dpc_core.cli.main import main

    with pytest.raises(SystemExit) as exited:
        main(["lineage", "--central"])
    assert exited.value.code == 2
