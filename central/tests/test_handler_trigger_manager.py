"""The trigger manager on moto: SQS batches, direct events, poison, spoofing, retries."""

from __future__ import annotations

import json
from typing import Any

import pytest
from central_harness import CENTRAL, A, B, C, World, events_of, register_case_study

from dpc_central.handlers import trigger_manager


def _records(*bodies: str) -> dict[str, Any]:
    """An SQS → Lambda event (AWS documentation sample shape, FIFO attributes)."""
    return {"Records": [{
        "messageId": f"m{i}", "receiptHandle": f"r{i}", "body": body,
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1795662000000",
                       "SequenceNumber": f"1890000000000000000{i}", "MessageGroupId": A,
                       "SenderId": "AIDAEXAMPLE", "MessageDeduplicationId": f"d{i}",
                       "ApproximateFirstReceiveTimestamp": "1795662000001"},
        "messageAttributes": {}, "md5OfBody": "x", "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:eu-west-1:{CENTRAL}:dpc-status.fifo",
        "awsRegion": "eu-west-1"} for i, body in enumerate(bodies)]}


def _happy() -> list[str]:
    return [json.dumps(e) for e in events_of("s01_happy_path.jsonl")]


def test_batch_of_the_happy_path_puts_one_trigger_on_cs_pipeline_bus(central: World) -> None:
    register_case_study(central)
    assert trigger_manager.handle(_records(*_happy()), None) == {"batchItemFailures": []}
    (put,) = central.puts
    assert (put.account, put.bus) == (C, "dpc-pipelines")
    trigger = put.event
    assert trigger["source"] == "dpc.trigger"
    assert trigger["detail-type"] == "dpc Pipeline Trigger"
    assert trigger["account"] == CENTRAL  # the sender, as EventBridge stamps it
    assert (trigger["detail"]["account"], trigger["detail"]["pipeline"]) == (C, "pipeline-x")
    assert central.tap() == []  # nothing on the central bus


def test_direct_eventbridge_invocation_is_accepted(central: World) -> None:
    register_case_study(central)
    results = [trigger_manager.handle(e, None) for e in events_of("s01_happy_path.jsonl")]
    assert [r["decisions"] for r in results] == [0, 0, 0, 1]


def test_redelivered_batch_triggers_nothing_more(central: World) -> None:
    register_case_study(central)
    trigger_manager.handle(_records(*_happy()), None)
    trigger_manager.handle(_records(*_happy()), None)
    assert len(central.triggers()) == 1


def test_poison_body_goes_to_the_dlq_and_is_not_retried(central: World) -> None:
    register_case_study(central)
    answer = trigger_manager.handle(_records("{not json", json.dumps({"hello": 1})), None)
    assert answer == {"batchItemFailures": []}
    dlq = [json.loads(r["body"]) for r in central.receive(CENTRAL, central.urls["poison"])]
    assert [d["reason"].split(":")[0] for d in dlq] == ["body is not JSON",
                                                        "not an EventBridge event (needs source, "
                                                        "detail-type and detail)"]


def test_event_of_another_shape_is_poison(central: World) -> None:
    register_case_study(central)
    foreign = {"version": "0", "id": "x", "source": "aws.ec2", "account": A,
               "detail-type": "EC2 Instance State-change Notification", "time": "",
               "region": "eu-west-1", "resources": [],
               "detail": {"instance-id": "i-1", "state": "running"}}
    assert trigger_manager.handle(foreign, None)["poison"].startswith(
        "not a Step Functions status event")


def test_poison_without_dlq_is_only_logged(central: World, monkeypatch: pytest.MonkeyPatch,
                                           caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv(trigger_manager.ENV_POISON_DLQ_URL)
    assert trigger_manager.handle(_records("[]"), None) == {"batchItemFailures": []}
    assert any('"dpc": "poison"' in r.getMessage() and '"sentToDlq": false' in r.getMessage()
               for r in caplog.records)


def test_transient_failure_fails_the_record_and_every_later_one(
        central: World, monkeypatch: pytest.MonkeyPatch) -> None:
    register_case_study(central)
    calls = {"n": 0}
    real = trigger_manager.process

    def flaky(raw: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise ConnectionError("DynamoDB unreachable")
        return real(raw)

    monkeypatch.setattr(trigger_manager, "process", flaky)
    answer = trigger_manager.handle(_records(*_happy()), None)
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m1"}, {"itemIdentifier": "m2"},
                                            {"itemIdentifier": "m3"}]}


def test_retried_records_complete_the_trigger(central: World) -> None:
    register_case_study(central)
    bodies = _happy()
    trigger_manager.handle(_records(*bodies[:1]), None)
    trigger_manager.handle(_records(*bodies), None)  # the redelivery of the failed tail
    assert [t["detail"]["pipeline"] for t in central.triggers()] == ["pipeline-x"]


def test_unregistered_state_machine_is_ignored_not_reported(central: World) -> None:
    register_case_study(central)
    (event,) = [e for e in events_of("s08_spoof.jsonl")][:1]
    result = trigger_manager.handle(event, None)
    assert result["rejected"] and not result["spoofed"]
    assert central.tap() == [] and central.triggers() == []


def test_spoofed_event_is_reported_on_the_central_bus(central: World) -> None:
    register_case_study(central)
    event = next(e for e in events_of("s01_happy_path.jsonl") if e["account"] == A)
    event = {**event, "account": B}
    result = trigger_manager.handle(event, None)
    assert result["spoofed"] is True
    (report,) = central.tap()
    assert (report["source"], report["detail"]["account"]) == ("dpc.trigger-manager", B)


# -- a message group per account (accounts not listed at setup share one on arrival) ----

D, E = "444444444444", "555555555555"  # organisation accounts not listed at setup


def _grouped(*items: tuple[str, str]) -> dict[str, Any]:
    """SQS records of the status queue: (message group, body)."""
    event = _records(*(body for _, body in items))
    for record, (group, _) in zip(event["Records"], items, strict=True):
        record["attributes"]["MessageGroupId"] = group
    return event


def _of(account: str, n: int) -> str:
    return json.dumps({"version": "0", "id": f"e-{account}-{n}", "source": "aws.states",
                       "detail-type": "Step Functions Execution Status Change",
                       "account": account, "region": "eu-west-1", "time": "2026-11-26T01:00:00Z",
                       "resources": [], "detail": {"n": n}})


def test_events_of_accounts_not_listed_move_to_a_group_per_account(
        central: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from dpc_central.conventions import ENV_STATUS_QUEUE_URL, OTHER_ACCOUNTS_GROUP

    monkeypatch.setenv(ENV_STATUS_QUEUE_URL, central.urls["status"])
    processed: list[Any] = []
    monkeypatch.setattr(trigger_manager, "process", processed.append)
    bodies = [_of(D, 1), _of(E, 1), _of(D, 2)]
    batch = _grouped(*((OTHER_ACCOUNTS_GROUP, b) for b in bodies))
    assert trigger_manager.handle(batch, None) == {"batchItemFailures": []}
    assert processed == []  # moved, not processed in the shared group
    # A redelivery of the same batch (the Lambda died before deleting) moves nothing twice.
    assert trigger_manager.handle(batch, None) == {"batchItemFailures": []}
    sqs = central.client(CENTRAL, "sqs")
    moved = []
    while True:
        got = sqs.receive_message(QueueUrl=central.urls["status"], MaxNumberOfMessages=10,
                                  AttributeNames=["MessageGroupId"]).get("Messages", [])
        if not got:
            break
        for m in got:
            moved.append((m["Attributes"]["MessageGroupId"], m["Body"]))
            sqs.delete_message(QueueUrl=central.urls["status"],
                               ReceiptHandle=m["ReceiptHandle"])
    assert sorted(moved) == sorted([(D, bodies[0]), (E, bodies[1]), (D, bodies[2])])
    # In its account's group, each event keeps its order.
    assert [b for g, b in moved if g == D] == [bodies[0], bodies[2]]
    # Moved events (now in the account's group) are processed, not moved again.
    assert trigger_manager.handle(_grouped(*moved), None) == {"batchItemFailures": []}
    assert len(processed) == 3


def test_a_transient_failure_holds_only_its_accounts_group(
        central: World, monkeypatch: pytest.MonkeyPatch) -> None:
    processed: list[str] = []

    def flaky(raw: Any) -> Any:
        if raw["account"] == D:
            raise ConnectionError("throttled")
        processed.append(raw["id"])

    monkeypatch.setattr(trigger_manager, "process", flaky)
    batch = _grouped((D, _of(D, 1)), (E, _of(E, 1)), (D, _of(D, 2)), (E, _of(E, 2)))
    answer = trigger_manager.handle(batch, None)
    # D's first event failed: D's later one waits; E's go on.
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m0"},
                                            {"itemIdentifier": "m2"}]}
    assert processed == [f"e-{E}-1", f"e-{E}-2"]


def test_status_events_as_the_team_forwarder_sends_them_decide_the_same_triggers(
        central: World) -> None:
    """The case study's happy path as the team accounts' forwarders put it on the
    central bus (source dpc.states, the detail without the runs' data): the engine reads
    every field it needs and decides the same trigger."""
    from dpc_central.handlers.status_forwarder import trimmed

    register_case_study(central)
    forwarded = [{**e, "source": "dpc.states", "detail": trimmed(e["detail"])}
                 for e in events_of("s01_happy_path.jsonl")]
    assert all(set(e["detail"]) <= {"executionArn", "stateMachineArn", "name", "status",
                                    "startDate", "stopDate", "redriveCount", "error",
                                    "cause", "input", "redriveStatus"} for e in forwarded)
    results = [trigger_manager.handle(e, None) for e in forwarded]
    assert [r["decisions"] for r in results] == [0, 0, 0, 1]
    (put,) = central.puts
    assert (put.event["detail"]["account"], put.event["detail"]["pipeline"]) == (C,
                                                                                 "pipeline-x")
