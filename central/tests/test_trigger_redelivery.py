"""Triggers are never lost silently.

The trigger manager puts each trigger straight on the child account's pipeline bus. A
claim is marked delivered only when that bus accepted the event (an ``EventId``, no
error); a refused trigger goes to the retry queue, is retried with backoff, and after
the last attempt lands in the delivery DLQ (alarmed: see tests/test_cdk_central.py). A
claim the handler never got to put (it died in between) is re-sent by the sweep.

A child's bus refuses by having its resource policy removed (``World.refuse_central``):
the harness's PutEvents answers ``AccessDeniedException`` for it, as EventBridge does
for a caller the bus policy does not admit (moto itself enforces no bus policy).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from central_harness import CENTRAL, REGION, C, World, events_of, register_case_study

from dpc_central.handlers import _common, reconciler, trigger_manager


def _batch(events: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Records": [{"messageId": f"m{i}", "receiptHandle": f"r{i}",
                         "body": json.dumps(e), "attributes": {}, "messageAttributes": {},
                         "md5OfBody": "x", "eventSource": "aws:sqs",
                         "eventSourceARN": f"arn:aws:sqs:{REGION}:{CENTRAL}:dpc-status.fifo",
                         "awsRegion": REGION} for i, e in enumerate(events)]}


def _claims() -> list[Any]:
    return _common.store().claims(f"{C}/pipeline-x")


def _retry_batch(world: World) -> dict[str, Any]:
    """The retry queue's messages as one SQS → Lambda batch (receive counts included)."""
    return {"Records": world.receive(CENTRAL, world.urls["retry"], delete=False)}


def _retry_until_empty(world: World, rounds: int) -> list[dict[str, Any]]:
    """Hand the retry queue to the handler ``rounds`` times (a new receive each time,
    every message visible again: the test does not wait out the backoff)."""
    answers = []
    for _ in range(rounds):
        batch = _retry_batch(world)
        if not batch["Records"]:
            break
        answers.append(trigger_manager.handle(batch, None))
        for record in batch["Records"]:  # what SQS does after the visibility timeout
            if {"itemIdentifier": record["messageId"]} not in answers[-1]["batchItemFailures"]:
                world.client(CENTRAL, "sqs").delete_message(
                    QueueUrl=world.urls["retry"], ReceiptHandle=record["receiptHandle"])
            else:
                world.client(CENTRAL, "sqs").change_message_visibility(
                    QueueUrl=world.urls["retry"], ReceiptHandle=record["receiptHandle"],
                    VisibilityTimeout=0)
    return answers


@pytest.fixture
def refused(central: World) -> World:
    """The happy path decided while C's pipeline bus refuses the central account."""
    register_case_study(central)
    central.refuse_central(C)
    answer = trigger_manager.handle(_batch(events_of("s01_happy_path.jsonl")), None)
    assert answer == {"batchItemFailures": []}  # the retry queue took the trigger
    assert central.triggers() == []
    return central


def test_a_delivered_trigger_leaves_no_undelivered_claim(central: World) -> None:
    register_case_study(central)
    trigger_manager.handle(_batch(events_of("s01_happy_path.jsonl")), None)
    assert len(central.triggers()) == 1
    assert _common.store().undelivered_claims(0) == []


def test_a_refused_trigger_is_not_marked_delivered(refused: World) -> None:
    (claim,) = _claims()
    assert _common.store().undelivered_claims(0) == [claim]


def test_a_refused_trigger_waits_in_the_retry_queue(refused: World) -> None:
    (claim,) = _claims()
    (record,) = _retry_batch(refused)["Records"]
    message = json.loads(record["body"])
    assert message["claim"] == {"child": f"{C}/pipeline-x", "window": claim.window,
                                "generation": claim.generation,
                                "executionName": claim.execution_name}
    assert message["entry"]["EventBusName"] == (
        f"arn:aws:events:{REGION}:{C}:event-bus/dpc-pipelines")
    assert message["error"].startswith("AccessDeniedException")


def test_the_retry_delivers_once_the_bus_admits_the_central_account(refused: World) -> None:
    refused.admit_central(C)
    (answer,) = _retry_until_empty(refused, rounds=3)
    assert answer == {"batchItemFailures": []}
    (trigger,) = refused.triggers()
    assert trigger["detail"]["executionName"] == _claims()[0].execution_name
    assert _common.store().undelivered_claims(0) == []
    assert _retry_batch(refused)["Records"] == []


def test_a_failed_retry_backs_off_exponentially(refused: World) -> None:
    batch = _retry_batch(refused)
    answer = trigger_manager.handle(batch, None)
    assert answer["batchItemFailures"] == [{"itemIdentifier": batch["Records"][0]["messageId"]}]
    # Its visibility was raised to the first pause: a receive now gets nothing.
    assert refused.receive(CENTRAL, refused.urls["retry"], delete=False) == []
    assert [_common.retry_delay_s(n) for n in (1, 2, 3, 4, 5, 6)] == [
        60, 120, 240, 480, 900, 900]


def test_retries_are_bounded_then_the_trigger_is_dead_lettered(
        refused: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(_common.ENV_DELIVERY_ATTEMPTS, "3")
    answers = _retry_until_empty(refused, rounds=10)
    assert len(answers) == 3  # attempts 1 and 2 failed, attempt 3 dead-lettered
    (dead,) = [json.loads(r["body"]) for r in refused.receive(CENTRAL,
                                                               refused.urls["delivery-dlq"])]
    assert dead["claim"]["child"] == f"{C}/pipeline-x" and dead["attempts"] == 3
    assert dead["error"].startswith("AccessDeniedException")
    # The DLQ holds it now: the sweep does not send it round again.
    assert _common.store().undelivered_claims(0) == []
    assert _common.redeliver_claims(older_than_ms=0) == 0


def test_a_copy_of_a_trigger_delivered_meanwhile_is_dropped(refused: World) -> None:
    refused.admit_central(C)
    assert _common.redeliver_claims(older_than_ms=0) == 1  # the sweep got there first
    refused.triggers()
    (answer,) = _retry_until_empty(refused, rounds=3)
    assert answer == {"batchItemFailures": []}
    assert refused.triggers() == []


def test_a_put_that_fails_as_a_whole_fails_each_entry(central: World) -> None:
    missing = f"arn:aws:events:{REGION}:{CENTRAL}:event-bus/no-such-bus"
    entry = {"Source": "dpc.trigger", "DetailType": "dpc Pipeline Trigger",
             "Detail": "{}", "EventBusName": missing}
    ((event_id, error),) = _common.put_once([entry])
    assert event_id is None and error.startswith("ResourceNotFoundException")


def test_the_sweep_sends_a_claim_its_handler_never_put_exactly_once(refused: World) -> None:
    (claim,) = _claims()
    refused.admit_central(C)
    assert _common.redeliver_claims(older_than_ms=0) == 1
    assert _common.redeliver_claims(older_than_ms=0) == 0
    (trigger,) = refused.triggers()
    assert (trigger["detail"]["account"], trigger["detail"]["pipeline"]) == (C, "pipeline-x")
    assert trigger["detail"]["executionName"] == claim.execution_name
    assert trigger["detail"]["input"]["dpc"]["logicalDate"] == claim.window
    assert {p["executionArn"] for p in trigger["detail"]["parents"]} == {
        p["executionArn"] for p in claim.parents}


def test_young_claims_are_left_to_their_own_handler(refused: World) -> None:
    refused.admit_central(C)
    assert _common.redeliver_claims() == 0  # default age: DPC_REDELIVER_AFTER_S = 300
    assert refused.triggers() == []


def test_the_next_trigger_manager_batch_sweeps(refused: World,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(_common.ENV_REDELIVER_AFTER_S, "0")
    refused.admit_central(C)
    trigger_manager.handle(_batch([]), None)
    trigger_manager.handle(_batch([]), None)
    assert [t["detail"]["pipeline"] for t in refused.triggers()] == ["pipeline-x"]


def test_a_failing_sweep_does_not_fail_the_batch(refused: World,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(_common.ENV_REDELIVER_AFTER_S, "0")
    monkeypatch.delenv("DPC_DELIVERY_RETRY_URL")
    monkeypatch.delenv("DPC_POISON_DLQ_URL")  # the refused trigger cannot even be queued
    foreign = {"source": "aws.ec2", "detail-type": "x", "detail": {}, "account": C}
    assert trigger_manager.handle(_batch([foreign]), None) == {"batchItemFailures": []}
    assert _common.store().undelivered_claims(0) == _claims()


def test_a_trigger_that_cannot_even_be_queued_fails_its_record(
        central: World, monkeypatch: pytest.MonkeyPatch) -> None:
    register_case_study(central)
    central.refuse_central(C)
    monkeypatch.delenv("DPC_DELIVERY_RETRY_URL")
    monkeypatch.delenv("DPC_POISON_DLQ_URL")
    answer = trigger_manager.handle(_batch(events_of("s01_happy_path.jsonl")), None)
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m3"}]}
    assert len(_common.store().undelivered_claims(0)) == 1  # left for the sweep


def test_the_reconciler_sweeps_on_its_schedule(refused: World,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(_common.ENV_REDELIVER_AFTER_S, "0")
    refused.admit_central(C)
    assert reconciler.handle({}, None)["redelivered"] == 1
    assert reconciler.handle({}, None)["redelivered"] == 0
    assert [t["detail"]["pipeline"] for t in refused.triggers()] == ["pipeline-x"]


def _forged(world: World, bus_account: str) -> dict[str, Any]:
    (claim,) = _claims()
    return {"dpc": "trigger-delivery", "error": "x",
            "claim": {"child": f"{C}/pipeline-x", "window": claim.window,
                      "generation": claim.generation, "executionName": "forged"},
            "entry": {"Source": "dpc.trigger", "DetailType": "dpc Pipeline Trigger",
                      "Detail": json.dumps({"account": C, "pipeline": "pipeline-x"}),
                      "EventBusName": f"arn:aws:events:{REGION}:{bus_account}:event-bus/"
                                      "dpc-pipelines"}}


def test_a_status_record_shaped_like_a_retry_is_not_a_retry(refused: World) -> None:
    refused.admit_central(C)
    batch = _batch([_forged(refused, C)])  # eventSourceARN: the status queue
    assert trigger_manager.handle(batch, None) == {"batchItemFailures": []}
    assert refused.triggers() == []  # treated as poison, nothing put


def test_a_retry_only_ever_goes_to_the_childs_own_bus(refused: World) -> None:
    refused.client(CENTRAL, "sqs").purge_queue(QueueUrl=refused.urls["retry"])
    _common.send_message(refused.urls["retry"], _forged(refused, "111111111111"))
    (answer,) = _retry_until_empty(refused, rounds=3)
    assert answer == {"batchItemFailures": []}
    assert refused.puts == []
