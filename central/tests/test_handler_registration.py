"""The registration API handler: ownership, cycles, validation, unregistering."""

from __future__ import annotations

import json
from typing import Any

import pytest
from central_harness import (
    CENTRAL,
    A,
    B,
    C,
    World,
    account_event,
    api_event,
    register_case_study,
)

from dpc_central.handlers import registration

COND = {"allOf": [{"name": "listings", "account": A, "status": ["SUCCESS"]}]}


def _call(method: str, account: str, name: str, caller: str, body: Any = None) -> Any:
    answer = registration.handle(api_event(method, account, name, caller, body), None)
    return answer["statusCode"], json.loads(answer["body"])


def test_owner_registers_and_statuses_are_normalised(central: World) -> None:
    status, body = _call("PUT", C, "child", C, {"condition": COND})
    assert status == 200
    assert body["parents"] == [f"{A}/listings"]
    assert body["condition"]["allOf"][0]["status"] == ["SUCCEEDED"]


def test_caller_cannot_register_another_accounts_pipeline(central: World) -> None:
    status, _ = _call("PUT", A, "listings", B, {"condition": None})
    assert status == 403
    assert _call("GET", A, "listings", A)[0] == 404


def test_caller_cannot_overwrite_or_delete_another_accounts_pipeline(central: World) -> None:
    register_case_study(central)
    assert _call("PUT", A, "listings", B, {"window": "hourly"})[0] == 403
    assert _call("DELETE", A, "listings", B)[0] == 403
    assert _call("GET", A, "listings", B)[1]["window"] == "daily"


def test_cycle_is_refused_with_its_path(central: World) -> None:
    register_case_study(central)
    cond = {"allOf": [{"name": "pipeline-x", "account": C, "status": ["SUCCEEDED"]}]}
    status, body = _call("PUT", A, "listings", A, {"condition": cond})
    assert status == 409
    assert body["cycle"] == [f"{A}/listings", f"{C}/pipeline-x", f"{A}/listings"]


def test_validation_error_names_the_field(central: World) -> None:
    status, body = _call("PUT", C, "child", C, {"condition": COND, "timezone": "Mars/Base"})
    assert (status, body["field"]) == (400, "timezone")
    status, body = _call("PUT", C, "child", C, {"condition": {"allOf": [{"name": "x"}]}})
    assert status == 400 and body["field"].startswith("condition.allOf.0")


def test_body_naming_another_account_is_refused(central: World) -> None:
    status, body = _call("PUT", C, "child", C, {"account": A, "condition": COND})
    assert (status, body["field"]) == (400, "account")


def test_request_without_iam_identity_is_forbidden(central: World) -> None:
    event = api_event("PUT", C, "child", C, {"condition": COND})
    event["requestContext"]["identity"] = {"accountId": None, "userArn": None, "caller": None}
    assert registration.handle(event, None)["statusCode"] == 403


def test_delete_unregisters(central: World) -> None:
    register_case_study(central)
    assert _call("DELETE", C, "pipeline-x", C)[0] == 200
    assert _call("GET", C, "pipeline-x", C)[0] == 404
    assert _call("DELETE", C, "pipeline-x", C)[0] == 404


def test_alert_channels_are_registered(central: World) -> None:
    register_case_study(central)
    info = _call("GET", C, "pipeline-x", A)[1]["info"]
    assert info["notifications"]["type"] == "FULL_EXECUTION"
    assert {t["channel"] for t in info["notifications"]["targets"]} == {"SLACK", "EMAIL"}
    assert info["topicArn"].endswith(f":{C}:dpc-pipeline-x")


# -- accounts that have not run setup-user-account ------------------------------------------

D = "444444444444"  # a member account whose user-account stack was never deployed


def test_a_child_in_an_account_without_setup_user_account_is_refused_naming_the_command(
        central: World) -> None:
    status, body = _call("PUT", D, "child", D, {"condition": COND})
    assert status == 409
    assert f"dpc setup-user-account --central-account {CENTRAL}" in body["message"]
    assert _call("GET", D, "child", D)[0] == 404


def test_once_its_stack_registered_the_account_its_children_register(central: World) -> None:
    central.set_up_account(D)
    assert _call("PUT", D, "child", D, {"condition": COND})[0] == 200


def test_a_scheduled_pipeline_needs_no_trigger_delivery(central: World) -> None:
    assert _call("PUT", D, "nightly", D, {"info": {"schedule": "cron(0 3 * * ? *)"}})[0] == 200


def test_only_the_account_itself_records_its_setup(central: World) -> None:
    answer = registration.handle(account_event("PUT", D, A), None)
    assert answer["statusCode"] == 403
    assert registration.handle(account_event("GET", D, D), None)["statusCode"] == 404


def test_deleting_the_user_account_stack_removes_the_record(central: World) -> None:
    central.set_up_account(D)
    assert registration.handle(account_event("DELETE", D, D), None)["statusCode"] == 200
    assert _call("PUT", D, "child", D, {"condition": COND})[0] == 409


# -- secrets never leave through a read ------------------------------------------------------

OPSGENIE = "https://api.opsgenie.com/v1/json/amazonsns?apiKey=0a1b2c3d-secret-key"


def _with_opsgenie(central: World) -> Any:
    body = {"notifications": {"type": "FAILURES_ONLY", "targets": [
        {"channel": "OPSGENIE", "addresses": [OPSGENIE]},
        {"channel": "SLACK", "addresses": ["data-alerts"]}]}}
    return _call("PUT", A, "listings", A, body)


def test_no_read_returns_an_address_credential(central: World) -> None:
    status, put_answer = _with_opsgenie(central)
    assert status == 200
    answers = [put_answer, _call("GET", A, "listings", B)[1],
               json.loads(registration.handle(api_event("GET", "", None, B), None)["body"])]
    for answer in answers:
        assert "0a1b2c3d-secret-key" not in json.dumps(answer)
    targets = answers[1]["info"]["notifications"]["targets"]
    assert targets[0]["addresses"][0].startswith(
        "https://api.opsgenie.com/...(redacted, sha256:")
    assert targets[1]["addresses"] == ["data-alerts"]  # plain addresses unchanged


def test_the_registry_keeps_no_secret_address(central: World) -> None:
    """The central account needs none: the OpsGenie subscription is made by the
    pipeline's stack in its own account (test_handler_registration_secrets has every
    placement)."""
    from dpc_central.handlers import _common

    _with_opsgenie(central)
    stored = _common.store().get_pipeline(f"{A}/listings")
    assert "0a1b2c3d-secret-key" not in json.dumps(stored.info)


# -- another account's topic --------------------------------------------------------------

def test_a_topic_of_another_account_inside_info_is_refused(central: World) -> None:
    foreign = f"arn:aws:sns:eu-west-1:{C}:dpc-pipeline-x"
    status, body = _call("PUT", A, "listings", A, {"info": {"topicArn": foreign}})
    assert (status, body["field"]) == (400, "info.topicArn")
    assert "schedule, description, owner, contact and deadline" in body["message"]


def test_unknown_info_keys_are_refused(central: World) -> None:
    status, body = _call("PUT", A, "listings", A, {"info": {"owner": "team-a", "x": 1}})
    assert (status, body["field"]) == (400, "info.x")


def test_a_top_level_topic_of_another_account_is_refused(central: World) -> None:
    foreign = f"arn:aws:sns:eu-west-1:{C}:dpc-pipeline-x"
    status, body = _call("PUT", A, "listings", A, {"topicArn": foreign})
    assert (status, body["field"]) == (400, "topicArn")


# -- bad input is a 400, never a Lambda error --------------------------------------------

@pytest.mark.parametrize("topic", ["arn:x:sns:", "arn:aws:sns", "", 42, ["arn"],
                                   f"arn:aws:sns:eu-west-1:{A}:"])
def test_a_malformed_topic_arn_is_a_400(central: World, topic: Any) -> None:
    status, body = _call("PUT", A, "listings", A, {"topicArn": topic})
    assert (status, body["field"]) == (400, "topicArn")


def test_a_huge_info_is_a_400(central: World) -> None:
    status, body = _call("PUT", A, "listings", A, {"info": {"description": "x" * 450_000}})
    assert (status, body["field"]) == (400, "body")
    assert "KiB" in body["message"]


def test_a_long_description_under_the_body_limit_is_a_400_naming_it(central: World) -> None:
    status, body = _call("PUT", A, "listings", A, {"info": {"description": "x" * 20_000}})
    assert (status, body["field"]) == (400, "info.description")


def _nested(depth: int) -> str:
    """A condition ``depth`` levels deep, as JSON text (json.dumps itself would recurse
    out of stack)."""
    leaf = json.dumps({"name": "listings", "account": A, "status": ["SUCCEEDED"]})
    return '{"allOf": [' * depth + leaf + "]}" * depth


def test_a_condition_nested_600_deep_is_a_400(central: World) -> None:
    status, body = _call("PUT", C, "child", C, '{"condition": ' + _nested(600) + "}")
    assert (status, body["field"]) == (400, "body")
    assert "nested" in body["message"]


def test_json_nested_deeper_than_the_limit_is_a_400_wherever_it_is(central: World) -> None:
    deep = "[" * (registration.MAX_JSON_DEPTH + 1) + "]" * (registration.MAX_JSON_DEPTH + 1)
    status, body = _call("PUT", A, "listings", A, '{"info": {"owner": ' + deep + "}}")
    assert (status, body["field"]) == (400, "body")


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    assert registration.json_depth('{"a": "[[[[{{{{", "b": ["\\"[["]}') == 2


def test_a_body_over_the_size_limit_is_a_400(central: World) -> None:
    status, body = _call("PUT", A, "listings", A, " " * (registration.MAX_BODY_BYTES + 1))
    assert (status, body["field"]) == (400, "body")


@pytest.mark.parametrize("body", ["[]", "null", '"x"', "{", '{"condition": 7}',
                                  '{"notifications": {"targets": "x"}}', '{"info": []}',
                                  '{"window": {"a": 1}}'])
def test_malformed_bodies_are_400s(central: World, body: str) -> None:
    assert _call("PUT", C, "child", C, body)[0] == 400


def test_an_unexpected_failure_is_a_500_answer_not_a_lambda_error(
        central: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from dpc_central.handlers import _common

    monkeypatch.setenv("DPC_TABLE_REGISTRY", "no-such-table")
    _common.reset()
    answer = registration.handle(api_event("GET", "", None, A), None)
    assert answer["statusCode"] == 500
    assert "internal error" in json.loads(answer["body"])["message"]


def test_lineage_page_of_the_central_registry_carries_no_address_credential(
        central: World) -> None:
    """`dpc lineage --central` reads the registry table itself (not the API): the page it
    builds embeds each pipeline's info, so it must redact too."""
    from click.testing import CliRunner

    from dpc_core.cli.main import cli

    _with_opsgenie(central)
    result = CliRunner().invoke(cli, [
        "lineage", "--central", "--central-tables", "dpc-registry,dpc-runs,dpc-windows",
        "--region", "eu-west-1", "--format", "html"])
    assert result.exit_code == 0, result.output
    assert "listings" in result.output
    assert "0a1b2c3d-secret-key" not in result.output
