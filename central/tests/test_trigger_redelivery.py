"""A claimed trigger whose PutEvents failed is not lost: claims are marked delivered
only after a successful PutEvents, and a sweep (each trigger-manager batch, bounded, and
each reconciler pass) re-sends those left unmarked for a few minutes.

PutEvents is made to fail by pointing the handlers at a bus that does not exist in moto
(``ResourceNotFoundException``), after the engine has claimed the trigger.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from central_harness import C, World, events_of, register_case_study

from dpc_central import conventions as names
from dpc_central.handlers import _common, reconciler, trigger_manager


def _batch(events: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Records": [{"messageId": f"m{i}", "receiptHandle": f"r{i}",
                         "body": json.dumps(e), "attributes": {}, "messageAttributes": {},
                         "md5OfBody": "x", "eventSource": "aws:sqs",
                         "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:dpc-status.fifo",
                         "awsRegion": "eu-west-1"} for i, e in enumerate(events)]}


@pytest.fixture
def lost(central: World, monkeypatch: pytest.MonkeyPatch) -> World:
    """The happy path decided while the central bus is unreachable: the claim is made,
    its trigger event is never put, and SQS's redelivery of the batch decides nothing."""
    register_case_study(central)
    monkeypatch.setenv(names.ENV_CENTRAL_BUS, "dpc-central-missing")
    happy = events_of("s01_happy_path.jsonl")
    failed = trigger_manager.handle(_batch(happy), None)["batchItemFailures"]
    assert failed == [{"itemIdentifier": "m3"}]  # the event that completed the condition
    monkeypatch.setenv(names.ENV_CENTRAL_BUS, names.CENTRAL_BUS_NAME)
    assert trigger_manager.handle(_batch(happy[3:]), None) == {"batchItemFailures": []}
    assert central.tap() == []
    return central


def _claims() -> list[Any]:
    return _common.store().claims(f"{C}/pipeline-x")


def test_a_delivered_trigger_leaves_no_undelivered_claim(central: World) -> None:
    register_case_study(central)
    trigger_manager.handle(_batch(events_of("s01_happy_path.jsonl")), None)
    assert len(central.tap()) == 1
    assert _common.store().undelivered_claims(0) == []


def test_a_claim_whose_put_failed_stays_undelivered(lost: World) -> None:
    (claim,) = _claims()
    assert _common.store().undelivered_claims(0) == [claim]


def test_the_sweep_sends_the_lost_trigger_exactly_once(lost: World) -> None:
    (claim,) = _claims()
    assert _common.redeliver_claims(older_than_ms=0) == 1
    assert _common.redeliver_claims(older_than_ms=0) == 0
    (trigger,) = lost.tap()
    assert (trigger["detail"]["account"], trigger["detail"]["pipeline"]) == (C, "pipeline-x")
    assert trigger["detail"]["executionName"] == claim.execution_name
    assert trigger["detail"]["input"]["dpc"]["logicalDate"] == claim.window
    assert {p["executionArn"] for p in trigger["detail"]["parents"]} == {
        p["executionArn"] for p in claim.parents}


def test_young_claims_are_left_to_their_own_handler(lost: World) -> None:
    assert _common.redeliver_claims() == 0  # default age: DPC_REDELIVER_AFTER_S = 300
    assert lost.tap() == []


def test_the_next_trigger_manager_batch_sweeps(lost: World,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(_common.ENV_REDELIVER_AFTER_S, "0")
    trigger_manager.handle(_batch([]), None)
    trigger_manager.handle(_batch([]), None)
    assert [t["detail"]["pipeline"] for t in lost.tap()] == ["pipeline-x"]


def test_a_failing_sweep_does_not_fail_the_batch(lost: World,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(_common.ENV_REDELIVER_AFTER_S, "0")
    monkeypatch.setenv(names.ENV_CENTRAL_BUS, "dpc-central-missing")
    foreign = {"source": "aws.ec2", "detail-type": "x", "detail": {}, "account": C}
    assert trigger_manager.handle(_batch([foreign]), None) == {"batchItemFailures": []}
    assert _common.store().undelivered_claims(0) == _claims()


def test_the_reconciler_sweeps_on_its_schedule(lost: World,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(_common.ENV_REDELIVER_AFTER_S, "0")
    assert reconciler.handle({}, None)["redelivered"] == 1
    assert reconciler.handle({}, None)["redelivered"] == 0
    assert [t["detail"]["pipeline"] for t in lost.tap()] == ["pipeline-x"]
