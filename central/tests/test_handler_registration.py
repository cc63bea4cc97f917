"""The registration API handler: ownership, cycles, validation, unregistering."""

from __future__ import annotations

import json
from typing import Any

from central_harness import A, B, C, World, api_event, register_case_study

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
