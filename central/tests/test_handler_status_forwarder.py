"""The team account's status forwarder on moto (Step Functions tags, EventBridge), and
the central handlers consuming what it forwards."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

REGION = "eu-west-1"
ACCOUNT = "123456789012"  # moto's default account
BUS = f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/dpc-central"
SECRET_CAUSE = "java.sql.SQLException: password=hunter2 for jdbc:mysql://db/prod"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """moto: the central bus with a rule copying what reaches it into a queue, and two
    state machines, one tagged as a dpc pipeline's."""
    import boto3
    from moto import mock_aws

    from dpc_central.handlers import _common, status_forwarder

    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("DPC_CENTRAL_BUS", BUS)
    monkeypatch.setattr(_common, "_clients", {})
    monkeypatch.setattr(status_forwarder, "_tags", {})
    with mock_aws():
        events = boto3.client("events", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        sfn = boto3.client("stepfunctions", region_name=REGION)
        events.create_event_bus(Name="dpc-central")
        queue = sqs.create_queue(QueueName="central")["QueueUrl"]
        qarn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        events.put_rule(Name="all", EventBusName="dpc-central",
                        EventPattern=json.dumps({"account": [ACCOUNT]}))
        events.put_targets(Rule="all", EventBusName="dpc-central",
                           Targets=[{"Id": "q", "Arn": qarn}])
        asl = json.dumps({"StartAt": "ok", "States": {"ok": {"Type": "Succeed"}}})
        role = f"arn:aws:iam::{ACCOUNT}:role/sfn"
        ours = sfn.create_state_machine(name="listings", definition=asl, roleArn=role,
                                        tags=[{"key": "dpc-pipeline", "value": "listings"}])
        other = sfn.create_state_machine(name="payroll", definition=asl, roleArn=role)
        yield {"sqs": sqs, "queue": queue, "ours": ours["stateMachineArn"],
               "other": other["stateMachineArn"]}


def status_event(machine: str, status: str = "FAILED") -> dict[str, Any]:
    """A status event as AWS puts it on the default bus (the case study's shape)."""
    name = machine.rsplit(":", 1)[-1]
    execution = machine.replace(":stateMachine:", ":execution:") + ":run-1"
    return {
        "version": "0", "id": "e-1", "detail-type": "Step Functions Execution Status Change",
        "source": "aws.states", "account": ACCOUNT, "time": "2026-11-26T05:10:00Z",
        "region": REGION, "resources": [execution],
        "detail": {
            "executionArn": execution, "stateMachineArn": machine, "name": "run-1",
            "status": status, "startDate": 1764133200000, "stopDate": 1764133800000,
            "input": json.dumps({"dpc": {"logicalDate": "2026-11-26", "parents": ["a"]},
                                 "customer": {"iban": "DE00 1234"}}),
            "inputDetails": {"included": True}, "output": json.dumps({"rows": 12}),
            "outputDetails": {"included": True}, "redriveCount": 0,
            "error": "States.TaskFailed", "cause": SECRET_CAUSE, "name_": name},
    }


def received(aws: dict[str, Any]) -> list[dict[str, Any]]:
    msgs = aws["sqs"].receive_message(QueueUrl=aws["queue"], MaxNumberOfMessages=10)
    return [json.loads(m["Body"]) for m in msgs.get("Messages", [])]


def test_only_dpc_state_machines_reach_central(aws: dict[str, Any]) -> None:
    from dpc_central.handlers.status_forwarder import handle

    assert handle(status_event(aws["other"])) == {
        "forwarded": False, "reason": "not a dpc state machine"}
    assert received(aws) == []
    assert handle(status_event(aws["ours"])) == {"forwarded": True}
    (event,) = received(aws)
    assert event["source"] == "dpc.states"
    assert event["detail"]["stateMachineArn"] == aws["ours"]


def test_what_reaches_central_carries_no_run_data(aws: dict[str, Any]) -> None:
    from dpc_central.handlers.status_forwarder import handle

    handle(status_event(aws["ours"]))
    (event,) = received(aws)
    detail = event["detail"]
    assert set(detail) == {"executionArn", "stateMachineArn", "name", "status", "startDate",
                           "stopDate", "redriveCount", "error", "input"}
    assert json.loads(detail["input"]) == {"dpc": {"logicalDate": "2026-11-26",
                                                   "parents": ["a"]}}
    text = json.dumps(event)
    assert "hunter2" not in text and "iban" not in text and "rows" not in text


def test_central_handlers_read_the_forwarded_event_as_the_aws_one(
        aws: dict[str, Any]) -> None:
    """The execution tracker and the engine (the trigger manager's) get every field they
    read: the same notification and the same parsed status event as from AWS's event."""
    from dpc_central.handlers.execution_tracker import to_notification
    from dpc_central.handlers.status_forwarder import handle
    from dpc_central.status_report import from_forwarded
    from dpc_core.events import StatusEvent

    original = status_event(aws["ours"], status="TIMED_OUT")
    original["detail"]["cause"] = "The execution timed out after 7200 seconds."
    handle(original)
    (forwarded,) = received(aws)
    # EventBridge stamps the sender's account on every event; moto's copy has none.
    forwarded.setdefault("account", ACCOUNT)
    assert to_notification(forwarded) == to_notification(original)
    note = to_notification(forwarded)
    assert note.kind == "PIPELINE_FINISHED" and note.logical_date == "2026-11-26"
    assert note.parents == ("a",) and note.error == original["detail"]["error"] + ": " + \
        original["detail"]["cause"]
    converted = from_forwarded(forwarded)
    assert converted is not None
    ours, theirs = StatusEvent.parse(converted), StatusEvent.parse(original)
    assert (ours.pipeline, ours.account, ours.logical_date, ours.detail.status,
            ours.detail.start_date, ours.detail.redrive_count) == (
        theirs.pipeline, theirs.account, theirs.logical_date, theirs.detail.status,
        theirs.detail.start_date, theirs.detail.redrive_count)


def test_a_refused_put_fails_the_invocation_so_lambda_retries(
        aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from dpc_central.handlers import status_forwarder

    monkeypatch.setenv("DPC_CENTRAL_BUS", BUS.replace("dpc-central", "no-such-bus"))
    with pytest.raises(Exception):  # noqa: B017 (moto's refusal or a ForwardFailed)
        status_forwarder.handle(status_event(aws["ours"]))
