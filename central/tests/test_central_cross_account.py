"""The cross-account flow on moto: accounts A, B, C and the central account.

Status events of the case study enter A's and B's default buses, are forwarded to the
central bus, queued per account on the FIFO queue, decided by the trigger manager, which
puts the trigger event on C's pipeline bus only (PutEvents by bus ARN), where the
idempotent starter starts ``pipeline-x`` once. Where moto does not deliver (bus → bus
across accounts keeping the sender's account, PutEvents by ARN on another account's bus
and that bus's policy, SQS → Lambda, rule → Lambda, rule → Step Functions, SNS → Lambda,
and Step Functions status events themselves) the harness of ``central_harness.py`` does
it, reading the rules, targets and bus policies back from moto and matching with moto's
pattern matcher.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from central_harness import (
    CENTRAL,
    REGION,
    A,
    B,
    C,
    World,
    events_of,
    register_case_study,
)

from dpc_central import conventions as names
from dpc_central.handlers import _common, execution_tracker, trigger_manager
from dpc_notify_slack import poster as slack_poster

pytestmark = pytest.mark.cross_account


def _run_trigger_manager(world: World, *, deliveries: int = 1) -> list[dict[str, Any]]:
    """Drain the status queue into the trigger manager, batches of 10 as Lambda polls;
    each batch is handed over ``deliveries`` times (SQS redelivers after a timeout)."""
    records = world.receive(CENTRAL, world.urls["status"])
    failures = []
    for i in range(0, len(records), 10):
        batch = {"Records": records[i:i + 10]}
        for _ in range(deliveries):
            failures += trigger_manager.handle(batch, None)["batchItemFailures"]
    return failures


def _deliver_triggers(world: World, *, times: int = 2) -> list[dict[str, Any]]:
    """Route what the trigger manager put on the pipeline buses along their rules,
    every event ``times`` times (EventBridge delivers at least once)."""
    put = list(world.puts)
    world.puts.clear()
    for delivery in put:
        for _ in range(times):
            world.route(delivery.account, delivery.bus, delivery.event)
    return [d.event for d in put]


def _triggers(world: World) -> list[tuple[str, str]]:
    """(account, bus) of every delivery of a trigger event the harness routed."""
    return [(d.account, d.bus) for d in world.deliveries
            if d.event.get("source") == names.TRIGGER_SOURCE]


def _executions(world: World, account: str, pipeline: str) -> list[dict[str, Any]]:
    sfn = world.client(account, "stepfunctions")
    arn = f"arn:aws:states:{REGION}:{account}:stateMachine:{pipeline}"
    return sfn.list_executions(stateMachineArn=arn)["executions"]


def _sfn_event(world: World, account: str, execution_arn: str, status: str) -> dict[str, Any]:
    """The status event Step Functions would emit (moto emits none), in the AWS shape."""
    from dpc_core.events import make_status_event

    d = world.client(account, "stepfunctions").describe_execution(executionArn=execution_arn)
    start = int(d["startDate"].timestamp() * 1000)
    return make_status_event(
        account=account, region=REGION, pipeline=d["stateMachineArn"].rsplit(":", 1)[1],
        execution=d["name"], status=status, start_ms=start,
        stop_ms=start + 60_000 if status != "RUNNING" else None,
        input=json.loads(d["input"]), event_id=f"{d['name']}-{status}",
        time="2026-11-26T05:00:00Z")


def test_case_study_triggers_pipeline_x_once_in_c_only(world: World) -> None:
    register_case_study(world)
    for event in events_of("s02_duplicates.jsonl"):  # every event three times already
        world.put(event["account"], event)
        world.put(event["account"], event)  # and each delivery twice more
    assert _run_trigger_manager(world, deliveries=2) == []
    tapped = _deliver_triggers(world, times=2)

    assert [e["detail"]["pipeline"] for e in tapped] == ["pipeline-x"]
    assert set(_triggers(world)) == {(C, names.PIPELINE_BUS_NAME)}
    assert world.tap() == []  # no trigger on the central bus: nothing to broadcast
    runs = _executions(world, C, "pipeline-x")
    assert [r["name"] for r in runs] == [tapped[0]["detail"]["executionName"]]
    # The trigger reached the starter twice; the second start of the same name was a
    # no-op (Step Functions answers it with the running execution, or refuses it).
    assert len(world.starts) == 2
    assert _executions(world, C, "listings-fallback") == []


def test_trigger_event_names_window_parents_and_input(world: World) -> None:
    register_case_study(world)
    for event in events_of("s01_happy_path.jsonl"):
        world.put(event["account"], event)
    _run_trigger_manager(world)
    (trigger,) = _deliver_triggers(world, times=1)

    assert trigger["detail"]["account"] == C
    assert trigger["detail"]["window"] == "2026-11-26"
    assert trigger["detail"]["input"]["dpc"]["logicalDate"] == "2026-11-26"
    parents = {(p["account"], p["pipeline"]) for p in trigger["detail"]["parents"]}
    assert parents == {(A, "listings"), (B, "searches")}
    (run,) = _executions(world, C, "pipeline-x")
    described = world.client(C, "stepfunctions").describe_execution(
        executionArn=run["executionArn"])
    assert json.loads(described["input"]) == trigger["detail"]["input"]


def test_slack_thread_of_the_triggered_run(world: World) -> None:
    from fakes.slack_server import FakeSlack

    register_case_study(world)
    for event in events_of("s01_happy_path.jsonl"):
        world.put(event["account"], event)
    _run_trigger_manager(world)
    _deliver_triggers(world, times=1)
    (run,) = _executions(world, C, "pipeline-x")
    arn = run["executionArn"]

    with FakeSlack(token="xoxb-test-token-0123456789") as slack:
        import os

        os.environ["DPC_SLACK_API_URL"] = slack.api_url
        try:
            # The run starts (Step Functions event), its step reports itself, and its
            # final state reports SUCCEEDED to the central bus (the reliable path).
            world.put(C, _sfn_event(world, C, arn, "RUNNING"))
            start_iso = "2026-11-26T04:00:00.000Z"
            world.route(CENTRAL, names.CENTRAL_BUS_NAME, {
                "version": "0", "id": "step-1", "source": names.RUN_STATUS_SOURCE,
                "detail-type": names.STEP_STATUS_DETAIL_TYPE, "account": C,
                "time": "2026-11-26T04:10:00Z", "region": REGION, "resources": [],
                "detail": {"executionArn": arn, "stateMachineArn": run["stateMachineArn"],
                           "step": "metric-x", "status": "SUCCEEDED",
                           "time": "2026-11-26T04:10:00Z"}})
            report = {
                "version": "0", "id": "report-1", "source": names.RUN_STATUS_SOURCE,
                "detail-type": names.RUN_STATUS_DETAIL_TYPE, "account": C,
                "time": "2026-11-26T04:11:00Z", "region": REGION, "resources": [],
                "detail": {"executionArn": arn, "stateMachineArn": run["stateMachineArn"],
                           "name": run["name"], "status": "SUCCEEDED",
                           "startTime": start_iso, "stopTime": "2026-11-26T04:11:00.000Z",
                           "input": json.dumps({"dpc": {"logicalDate": "2026-11-26"}}),
                           "redriveCount": 0}}
            world.route(CENTRAL, names.CENTRAL_BUS_NAME, report)
            world.route(CENTRAL, names.CENTRAL_BUS_NAME, report)  # delivered twice
            for target, event in world.lambda_invocations:
                assert target.endswith(":function:dpc-execution-tracker")
                execution_tracker.handle(event, None)
            records = world.sqs_records("pipeline-x", C)
            for record in records:
                slack_poster.handle({"Records": [record]}, None)
                slack_poster.handle({"Records": [record]}, None)  # delivered twice
        finally:
            del os.environ["DPC_SLACK_API_URL"]

        (root,) = slack.roots("data-pipeline-alerts")
        replies = slack.replies(root)
    assert "pipeline-x" in root.text and "SUCCEEDED" in root.text  # rewritten at the end
    assert root.updates == 1
    assert [("metric-x" in r.text, "SUCCEEDED" in r.text) for r in replies] == [
        (True, True), (False, True)]
    threads = world.client(CENTRAL, "dynamodb").get_item(
        TableName="dpc-slack-threads", Key={"executionArn": {"S": arn}})["Item"]
    assert threads["t##data-pipeline-alerts"]["M"]["ts"]["S"] == root.ts


def test_spoofed_status_event_triggers_nothing_and_is_reported(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    register_case_study(world)
    searches = [e for e in events_of("s01_happy_path.jsonl") if e["account"] == B]
    for event in searches:
        world.put(B, event)
    listings_ok = next(e for e in events_of("s01_happy_path.jsonl")
                       if e["account"] == A and e["detail"]["status"] == "SUCCEEDED")
    spoof = json.loads(json.dumps(listings_ok))
    spoof["account"] = B  # B puts it on the central bus: EventBridge stamps B
    spoof["id"] = "spoofed-by-b"
    # moto cannot PutEvents on another account's bus: the harness delivers B's put.
    world.route(CENTRAL, names.CENTRAL_BUS_NAME, spoof)

    with caplog.at_level(logging.INFO, logger="dpc.central"):
        assert _run_trigger_manager(world) == []
    tapped = world.tap()

    assert [e["detail-type"] for e in tapped] == [trigger_manager.REJECTED_DETAIL_TYPE]
    assert tapped[0]["detail"]["account"] == B
    assert tapped[0]["detail"]["stateMachineArn"].split(":")[4] == A
    assert any('"dpc": "spoofed"' in r.getMessage() for r in caplog.records)
    assert _executions(world, C, "pipeline-x") == []


D = "444444444444"


def test_an_account_set_up_after_the_central_stack_receives_its_triggers(
        world: World) -> None:
    """No rule per account in the central account: D, which nobody listed when the
    central stack was deployed, runs setup-user-account, registers a child of listings,
    and gets its trigger on its own pipeline bus (and no other account does)."""
    from central_harness import api_event

    from dpc_central.handlers import registration

    register_case_study(world)
    world.set_up_account(D)
    registered = registration.handle(api_event("PUT", D, "late-child", D, {
        "condition": {"allOf": [{"name": "listings", "account": A,
                                 "status": ["SUCCEEDED"]}]}}), None)
    assert registered["statusCode"] == 200, registered
    for event in events_of("s01_happy_path.jsonl"):
        world.put(event["account"], event)
    assert _run_trigger_manager(world) == []
    delivered = {(d.account, d.bus, d.event["detail"]["pipeline"]) for d in world.puts}
    assert delivered == {(D, names.PIPELINE_BUS_NAME, "late-child"),
                         (C, names.PIPELINE_BUS_NAME, "pipeline-x")}
    assert _common.store().undelivered_claims(0) == []
