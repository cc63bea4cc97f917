"""LATE and BLOCKED notices from the central reconciler's pass, on moto: the case study
registered through the registration API (pipeline-x with an owner and a deadline), a lost
FAILED of listings repaired by the reconciler, the notices published once to
pipeline-x's own SNS topic (read back through an SQS subscription), resolved when
pipeline-x succeeds."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from central_harness import REGION, A, C, World, api_event, registration_body

from dpc_central.handlers import _common, reconciler, registration
from dpc_core.events import make_status_event

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)  # past pipeline-x's 06:00 deadline


def _register(world: World) -> None:
    for p in world.case_study():
        account = p.account or ""
        body = registration_body(p, f"arn:aws:sns:{REGION}:{account}:dpc-{p.name}")
        if p.name == "pipeline-x":
            body["info"] = {**body["info"], "owner": "rent-journey",
                            "contact": "rent@example.com", "deadline": "06:00"}
        if p.name == "listings":
            body["info"] = {**body["info"], "owner": "core-data-availability"}
        answer = registration.handle(api_event("PUT", account, p.name, account, body), None)
        assert answer["statusCode"] == 200, answer


def _topic_queue(world: World) -> str:
    sns = world.client(C, "sns")
    topic = sns.create_topic(Name="dpc-pipeline-x")["TopicArn"]
    url = world.client(C, "sqs").create_queue(QueueName="x-notes")["QueueUrl"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=f"arn:aws:sqs:{REGION}:{C}:x-notes")
    return str(url)


def _notes(world: World, url: str) -> list[dict[str, Any]]:
    out = []
    while True:
        msgs = world.client(C, "sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10)
        if not msgs.get("Messages"):
            return out
        for m in msgs["Messages"]:
            envelope = json.loads(m["Body"])
            out.append(json.loads(envelope["MessageAttributes"]["dpc-notification"]["Value"]))
            world.client(C, "sqs").delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def _failed_listings(world: World) -> None:
    """listings failed for 2026-11-26 and its FAILED never reached the central account
    (moto runs no execution to its end: the test sets the status moto holds)."""
    from moto.stepfunctions.models import stepfunctions_backends

    sfn = world.client(A, "stepfunctions")
    sm = sfn.create_state_machine(
        name="listings", roleArn=f"arn:aws:iam::{A}:role/r",
        definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}))
    arn = sfn.start_execution(stateMachineArn=sm["stateMachineArn"], name="l1",
                              input=json.dumps({"dpc": {"logicalDate": "2026-11-26"}}))
    execution = stepfunctions_backends[A][REGION].describe_execution(arn["executionArn"])
    execution.status = "FAILED"
    execution.stop_date = datetime.now(UTC).isoformat()


def test_the_reconciler_sends_one_blocked_and_one_late_notice_and_resolves_both(
        central: World) -> None:
    _register(central)
    url = _topic_queue(central)
    _failed_listings(central)

    first = reconciler.reconcile(now=NOW)
    assert first["fed"] == 1  # the lost FAILED, repaired
    assert first["notices"] == {"blocked": 1, "late": 1, "resolved": 0, "failed": 0}
    notes = {n["kind"]: n for n in _notes(central, url)}
    assert set(notes) == {"PIPELINE_BLOCKED", "PIPELINE_LATE"}
    blocked = notes["PIPELINE_BLOCKED"]["message"]
    assert blocked.startswith(f"pipeline-x ({C}, rent-journey) is blocked for 2026-11-26: "
                              f"listings ({A}, core-data-availability) run l1 FAILED at")
    assert blocked.endswith("pipeline-x will run automatically when listings succeeds for "
                            "2026-11-26")
    late = notes["PIPELINE_LATE"]["message"]
    assert f"by its deadline 06:00 UTC; waiting on listings ({A}, core-data-availability) " \
           "FAILED at" in late
    assert "searches (222222222222) has not run" in late

    again = reconciler.reconcile(now=NOW)  # one notice per window, whatever the passes
    assert again["notices"] == {"blocked": 0, "late": 0, "resolved": 0, "failed": 0}
    assert _notes(central, url) == []

    # Fixed: pipeline-x ran and succeeded for the date.
    _common.engine().handle(make_status_event(
        account=C, region=REGION, pipeline="pipeline-x", execution="x1", status="SUCCEEDED",
        start_ms=int(NOW.timestamp() * 1000), input={"dpc": {"logicalDate": "2026-11-26"}}))
    fixed = reconciler.reconcile(now=NOW)
    assert fixed["notices"]["resolved"] == 2
    resolved = _notes(central, url)
    assert sorted(n["run_id"] for n in resolved) == ["blocked:2026-11-26", "late:2026-11-26"]
    assert all(n["kind"] == "NOTICE_RESOLVED" and n["status"] == "RECOVERED" for n in resolved)
    assert reconciler.reconcile(now=NOW)["notices"]["resolved"] == 0


def test_the_fallback_is_not_told_it_is_blocked(central: World) -> None:
    _register(central)
    _topic_queue(central)
    _failed_listings(central)
    reconciler.reconcile(now=NOW)
    store = _common.store()
    items = store.client.scan(TableName=store.tables.registry,
                              FilterExpression="begins_with(pk, :n)",
                              ExpressionAttributeValues={":n": {"S": "N#"}})["Items"]
    assert sorted((i["pk"]["S"], i["sk"]["S"]) for i in items) == [
        (f"N#{C}/pipeline-x", "2026-11-26#BLOCKED"), (f"N#{C}/pipeline-x", "2026-11-26#LATE")]


def test_a_notice_that_could_not_be_published_is_sent_by_the_next_pass(
        central: World) -> None:
    _register(central)
    _failed_listings(central)
    first = reconciler.reconcile(now=NOW)  # pipeline-x's topic does not exist yet
    assert first["notices"]["failed"] == 2 and first["notices"]["blocked"] == 0
    url = _topic_queue(central)
    second = reconciler.reconcile(now=NOW)
    assert (second["notices"]["blocked"], second["notices"]["late"]) == (1, 1)
    assert sorted(n["kind"] for n in _notes(central, url)) == ["PIPELINE_BLOCKED",
                                                              "PIPELINE_LATE"]
