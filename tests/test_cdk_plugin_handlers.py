"""A plugin written outside the repo contributes a Lambda handler through the
``dpc_lambda_handlers`` hook and its own constructs through ``dpc_central_constructs``;
the central stack deploys them (checked on the template, with cdk-nag at synth), with no
change to the core or the central package. The registry here holds only that plugin:
the central stack then has no Slack service (it names no channel)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from dpc_core.plugins import EntryPointLike, load_registry

PLUGIN = '''
from dpc_core import hookimpl

DPC_PLUGIN_API = 1


@hookimpl
def dpc_lambda_handlers():
    """The Teams poster."""
    yield ("teams-poster", "dpc_notify_teams.handler:handle")


@hookimpl
def dpc_central_constructs(scope, central):
    """The Teams channel's own service: its state table and a notifier Lambda."""
    state = central.table(scope, "TeamsState", key="executionArn")
    fn = central.function(scope, "TeamsNotifier", handler="dpc_notify_teams.notifier.handle",
                          function_name="dpc-teams-notifier",
                          environment={"DPC_TEAMS_STATE": state.table_name})
    state.grant_read_write_data(fn.function)
    central.tables.registry.grant_read_data(fn.function)
'''


def _registry(tmp_path: Path, module: str, body: str) -> Any:
    (tmp_path / f"{module}.py").write_text(body)
    sys.path.insert(0, str(tmp_path))
    try:
        return load_registry([EntryPointLike("teams", module, "dpc-notify-teams", "0.1.0")])
    finally:
        sys.path.remove(str(tmp_path))


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from dpc_central.app import CENTRAL_STACK, central_app

    root = tmp_path_factory.mktemp("plugin-lambda")
    reg = _registry(root, "dpc_teams_plugin_fixture", PLUGIN)
    out = root / "cdk.out"
    central_app(outdir=out, org_id=None, member_accounts=["111111111111"],
                account="999999999999", region="eu-west-1", registry=reg).synth()
    return json.loads((out / f"{CENTRAL_STACK}.template.json").read_text())


def _functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["Properties"].get("FunctionName", lid): r["Properties"]
            for lid, r in template["Resources"].items() if r["Type"] == "AWS::Lambda::Function"}


def test_the_plugin_handler_is_deployed_as_a_dpc_lambda(template: dict[str, Any]) -> None:
    fn = _functions(template)["dpc-plugin-teams-poster"]
    assert fn["Handler"] == "dpc_notify_teams.handler.handle"
    assert "DeadLetterConfig" in fn
    env = fn["Environment"]["Variables"]
    assert {"DPC_TABLE_REGISTRY", "DPC_TABLE_RUNS", "DPC_TABLE_WINDOWS"} <= set(env)


def test_the_plugin_handler_may_read_the_registry_and_put_on_the_central_bus(
        template: dict[str, Any]) -> None:
    policies = [r["Properties"] for r in template["Resources"].values()
                if r["Type"] == "AWS::IAM::Policy"
                and "PluginHandlers" in json.dumps(r["Properties"].get("Roles", []))]
    actions = {a for p in policies for s in p["PolicyDocument"]["Statement"]
               for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert "events:PutEvents" in actions
    assert "dynamodb:GetItem" in actions and "dynamodb:Query" in actions
    assert not any(a.startswith("dynamodb:Put") or a.startswith("dynamodb:Delete")
                   for a in actions)


def test_a_malformed_handler_target_is_refused_with_its_name(tmp_path: Path) -> None:
    from dpc_central.central_account.plugin_functions import plugin_handlers

    reg = _registry(tmp_path, "dpc_bad_handler_fixture", PLUGIN.replace(
        '"dpc_notify_teams.handler:handle"', '"not a target"'))
    with pytest.raises(ValueError, match="teams-poster"):
        plugin_handlers(reg)


def test_a_third_party_channel_contributes_its_own_constructs(
        template: dict[str, Any]) -> None:
    fn = _functions(template)["dpc-teams-notifier"]
    assert fn["Handler"] == "dpc_notify_teams.notifier.handle"
    assert "DeadLetterConfig" in fn and fn["TracingConfig"] == {"Mode": "Active"}
    state = fn["Environment"]["Variables"]["DPC_TEAMS_STATE"]["Ref"]
    table = template["Resources"][state]
    assert table["Type"] == "AWS::DynamoDB::Table" and table["DeletionPolicy"] == "Retain"
    assert table["Properties"]["PointInTimeRecoverySpecification"] == {
        "PointInTimeRecoveryEnabled": True}
    alarms = [r["Properties"] for r in template["Resources"].values()
              if r["Type"] == "AWS::CloudWatch::Alarm" and r["Properties"].get("MetricName")
              == "Errors"]
    assert any(a["Dimensions"][0]["Value"] == {"Ref": next(
        lid for lid, r in template["Resources"].items() if r["Type"] == "AWS::Lambda::Function"
        and r["Properties"].get("FunctionName") == "dpc-teams-notifier")} for a in alarms)


def test_without_the_slack_plugin_the_central_stack_has_no_slack_service(
        template: dict[str, Any]) -> None:
    assert "dpc-slack-poster" not in _functions(template)
    assert not [r for r in template["Resources"].values()
                if r["Type"] == "AWS::SecretsManager::Secret"]
