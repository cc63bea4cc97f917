"""Execution tracker, Slack poster and reconciler handlers on moto."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from central_harness import CENTRAL, REGION, SLACK_TOKEN, A, B, C, World, register_case_study

from dpc_central.handlers import execution_tracker, reconciler
from dpc_core.events import make_status_event
from dpc_notify_slack import poster as slack_poster


def _status(account: str, pipeline: str, status: str, **kw: Any) -> dict[str, Any]:
    return make_status_event(account=account, region=REGION, pipeline=pipeline,
                             execution="run-1", status=status, start_ms=1795662000000,
                             stop_ms=1795662060000, input={"dpc": {"logicalDate": "2026-11-26"}},
                             **kw)


def _published(world: World, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(execution_tracker, "publish",
                        lambda topic, note: sent.append({"topic": topic, "note": note}))
    return sent


def test_tracker_publishes_run_start_to_the_pipelines_topic(
        central: World, monkeypatch: pytest.MonkeyPatch) -> None:
    register_case_study(central)
    sent = _published(central, monkeypatch)
    assert execution_tracker.handle(_status(C, "pipeline-x", "RUNNING"), None) == {
        "published": 1}
    assert sent[0]["topic"] == f"arn:aws:sns:{REGION}:{C}:dpc-pipeline-x"
    assert (sent[0]["note"].kind, sent[0]["note"].logical_date) == ("PIPELINE_STARTED",
                                                                    "2026-11-26")


def test_tracker_leaves_succeeded_to_the_runs_own_report(
        central: World, monkeypatch: pytest.MonkeyPatch) -> None:
    register_case_study(central)
    sent = _published(central, monkeypatch)
    execution_tracker.handle(_status(C, "pipeline-x", "SUCCEEDED"), None)
    execution_tracker.handle(_status(C, "pipeline-x", "TIMED_OUT"), None)
    assert [(n["note"].kind, n["note"].status) for n in sent] == [
        ("PIPELINE_FINISHED", "TIMED_OUT")]


def test_tracker_follows_the_notification_type(
        central: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from central_harness import api_event

    from dpc_central.handlers import registration

    body = {"notifications": {"type": "FAILURES_ONLY",
                              "targets": [{"channel": "SLACK", "addresses": ["ops"]}]}}
    registration.handle(api_event("PUT", A, "quiet", A, body), None)
    sent = _published(central, monkeypatch)
    execution_tracker.handle(_status(A, "quiet", "RUNNING"), None)
    execution_tracker.handle(_status(A, "quiet", "ABORTED"), None)
    assert [n["note"].status for n in sent] == ["ABORTED"]


def test_tracker_ignores_foreign_spoofed_and_malformed_events(
        central: World, monkeypatch: pytest.MonkeyPatch) -> None:
    register_case_study(central)
    sent = _published(central, monkeypatch)
    spoofed = {**_status(C, "pipeline-x", "RUNNING"), "account": B}
    foreign = {"source": "aws.ec2", "detail-type": "EC2 Instance State-change Notification",
               "account": C, "detail": {"state": "running"}}
    unknown = _status(C, "not-registered", "RUNNING")
    for event in (spoofed, foreign, unknown, {"hello": "world"}):
        assert execution_tracker.handle(event, None) == {"published": 0}
    assert sent == []


def test_tracker_publishes_to_sns_with_the_note_attribute(central: World) -> None:
    register_case_study(central)
    sns = central.client(C, "sns")
    topic = sns.create_topic(Name="dpc-pipeline-x")["TopicArn"]
    url = central.client(C, "sqs").create_queue(QueueName="t")["QueueUrl"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=f"arn:aws:sqs:{REGION}:{C}:t")
    execution_tracker.handle(_status(C, "pipeline-x", "RUNNING"), None)
    (msg,) = central.client(C, "sqs").receive_message(QueueUrl=url)["Messages"]
    envelope = json.loads(msg["Body"])
    note = json.loads(envelope["MessageAttributes"]["dpc-notification"]["Value"])
    assert (note["pipeline"], note["kind"]) == ("pipeline-x", "PIPELINE_STARTED")
    assert envelope["Subject"].startswith("[RUNNING] pipeline-x")


def _sns_record(note: dict[str, Any], topic_account: str | None = None) -> dict[str, Any]:
    """What SNS delivers from the pipeline's topic (in ``topic_account``, by default the
    pipeline's own account)."""
    topic = f"arn:aws:sns:{REGION}:{topic_account or note['account']}:dpc-{note['pipeline']}"
    return {"Records": [{"EventSource": "aws:sns", "EventVersion": "1.0",
                         "EventSubscriptionArn": f"{topic}:1",
                         "Sns": {"Type": "Notification", "MessageId": "m", "Message": "text",
                                 "TopicArn": topic,
                                 "MessageAttributes": {"dpc-notification": {
                                     "Type": "String", "Value": json.dumps(note)}}}}]}


def _note(kind: str, status: str) -> dict[str, Any]:
    return {"kind": kind, "pipeline": "pipeline-x", "account": C, "logical_date": "2026-11-26",
            "run_id": f"arn:aws:states:{REGION}:{C}:execution:pipeline-x:r1", "status": status,
            "duration_s": None, "step": None, "error": None, "parents": []}


def test_slack_poster_threads_a_run_and_never_logs_the_token(
        central: World, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    from fakes.slack_server import FakeSlack

    register_case_study(central)
    # dpc's and slack-sdk's own logs, at every level (botocore's DEBUG wire logs are
    # not enabled in Lambda and are outside the handler's control).
    with caplog.at_level(logging.DEBUG, logger="dpc"), \
            caplog.at_level(logging.DEBUG, logger="slack_sdk"), \
            FakeSlack(token=SLACK_TOKEN) as slack:
        monkeypatch.setenv("DPC_SLACK_API_URL", slack.api_url)
        slack_poster.handle(_sns_record(_note("PIPELINE_STARTED", "RUNNING")), None)
        slack_poster.handle(_sns_record(_note("PIPELINE_FINISHED", "FAILED")), None)
        (root,) = slack.roots("data-pipeline-alerts")
        (reply,) = slack.replies(root)
        assert "FAILED" in reply.text
    assert SLACK_TOKEN not in caplog.text


def test_slack_poster_refuses_a_note_from_a_topic_of_another_account(
        central: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """The poster admits the dpc-* topics of any account (organisation accounts join after
    setup): a topic speaks only for its own account's registered pipelines."""
    from fakes.slack_server import FakeSlack

    register_case_study(central)
    with FakeSlack(token=SLACK_TOKEN) as slack:
        monkeypatch.setenv("DPC_SLACK_API_URL", slack.api_url)
        # An outsider's dpc-pipeline-x topic names pipeline-x of account C: refused.
        out = slack_poster.handle(_sns_record(_note("PIPELINE_STARTED", "RUNNING"),
                                              topic_account="555555555555"), None)
        assert out == {"posted": 0}
        assert slack.roots("data-pipeline-alerts") == []
        # The same note from C's own topic is posted.
        out = slack_poster.handle(_sns_record(_note("PIPELINE_STARTED", "RUNNING")), None)
        assert out["posted"] == 1


def test_slack_poster_ignores_records_without_a_note(central: World) -> None:
    event = {"Records": [{"EventSource": "aws:sns", "Sns": {"Message": "hi"}}]}
    assert slack_poster.handle(event, None) == {"posted": 0}


def _finished_run(world: World, account: str, name: str, status: str) -> str:
    """A run of ``name`` that finished with ``status``: moto does not run executions to
    completion, so the test sets the status moto's backend holds for it."""
    from datetime import UTC, datetime

    from moto.stepfunctions.models import stepfunctions_backends

    sfn = world.client(account, "stepfunctions")
    sm = sfn.create_state_machine(
        name=name, roleArn=f"arn:aws:iam::{account}:role/r",
        definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}))
    arn = sfn.start_execution(stateMachineArn=sm["stateMachineArn"], name="d0",
                              input=json.dumps({"dpc": {"logicalDate": "2026-11-26"}}))
    backend = stepfunctions_backends[account][REGION]
    execution = backend.describe_execution(arn["executionArn"])
    execution.status = status
    execution.stop_date = datetime.now(UTC).isoformat()
    return str(arn["executionArn"])


def test_reconciler_feeds_lost_terminal_statuses_to_the_engine(central: World) -> None:
    register_case_study(central)
    # Neither parent's SUCCEEDED ever reached the central account.
    _finished_run(central, A, "listings", "SUCCEEDED")
    _finished_run(central, B, "searches", "SUCCEEDED")
    result = reconciler.handle({"source": "aws.events", "detail-type": "Scheduled Event"})
    assert (result["accounts"], result["fed"], result["failedAccounts"]) == (2, 2, [])
    assert [t["detail"]["pipeline"] for t in central.triggers()] == ["pipeline-x"]


def test_reconciler_skips_what_the_run_log_has(central: World) -> None:
    register_case_study(central)
    _finished_run(central, A, "listings", "SUCCEEDED")
    reconciler.handle({}, None)
    assert reconciler.handle({}, None)["fed"] == 0
    assert CENTRAL


def test_reconciler_visits_an_account_known_only_from_the_registry(
        central: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """An organisation account that joined after the central stack was deployed (listed
    nowhere at setup, not one of the harness's members) ran setup-user-account and
    registered a parent pipeline: the reconciler assumes its read role and repairs the
    parent's lost SUCCEEDED, so the child in A is triggered."""
    from central_harness import api_event

    from dpc_central.handlers import registration

    late = "444444444444"
    central.set_up_account(late)  # its pipeline bus, and PUT /accounts/444...
    for account, name, body in [
            (late, "late-parent", {"condition": None, "window": "daily"}),
            (A, "late-child", {"condition": {"operator": "AND", "allOf": [
                {"account": late, "name": "late-parent", "status": ["SUCCEEDED"]}]},
                "window": "daily"})]:
        answer = registration.handle(api_event("PUT", account, name, account, body), None)
        assert answer["statusCode"] == 200, answer
    _finished_run(central, late, "late-parent", "SUCCEEDED")
    assumed: list[str] = []
    real = reconciler._session

    def session(account: str, region: str) -> Any:
        assumed.append(account)
        return real(account, region)

    monkeypatch.setattr(reconciler, "_session", session)
    result = reconciler.handle({}, None)
    assert assumed == [late]
    assert (result["accounts"], result["fed"], result["failedAccounts"]) == (1, 1, [])
    assert [(t["detail"]["account"], t["detail"]["pipeline"]) for t in central.triggers()] == \
        [(A, "late-child")]


@pytest.mark.parametrize(("region", "partition"), [
    ("eu-west-1", "aws"), ("cn-north-1", "aws-cn"), ("us-gov-west-1", "aws-us-gov")])
def test_reconciler_assumes_the_read_role_in_the_partition_of_its_region(
        central: World, monkeypatch: pytest.MonkeyPatch, region: str, partition: str) -> None:
    """The read role's ARN is the one the team stack creates (``arn:${AWS::Partition}``),
    also outside the commercial partition."""
    from dpc_central.handlers import _common

    asked: list[str] = []

    class Sts:
        def assume_role(self, **kw: Any) -> dict[str, Any]:
            asked.append(kw["RoleArn"])
            return {"Credentials": {"AccessKeyId": "a", "SecretAccessKey": "s",
                                    "SessionToken": "t"}}

    monkeypatch.setattr(_common, "client", lambda service: Sts())
    # Without the central stack's DPC_READ_ROLE_NAME: the name the team stack gives the
    # role in that region (IAM names are account-wide, so each region has its own).
    monkeypatch.delenv("DPC_READ_ROLE_NAME", raising=False)
    reconciler._session(A, region)
    assert asked == [f"arn:{partition}:iam::{A}:role/dpc-central-reconciler-read-{region}"]


def test_tracker_never_publishes_to_another_accounts_topic(
        central: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """A registration stored before the API refused info.topicArn (or written around it):
    A's notes still go to A's own topic, never to C's."""
    from dpc_central.handlers import _common
    from dpc_core.store import PipelineSpec

    foreign = f"arn:aws:sns:{REGION}:{C}:dpc-pipeline-x"
    _common.store().put_pipeline(PipelineSpec(account=A, name="listings", info={
        "topicArn": foreign, "notifications": {"type": "PIPELINE", "targets": [
            {"channel": "SLACK", "addresses": ["a-alerts"]}]}}))
    sent = _published(central, monkeypatch)
    assert execution_tracker.handle(_status(A, "listings", "RUNNING"), None) == {"published": 1}
    assert [n["topic"] for n in sent] == [f"arn:aws:sns:{REGION}:{A}:dpc-listings"]


# -- the notes queue (SNS → SQS → the poster) -------------------------------------------

def _sqs_record(envelope: dict[str, Any], message_id: str = "q1") -> dict[str, Any]:
    """What SQS hands the poster: the SNS message as the body (not raw delivery)."""
    return {"messageId": message_id, "receiptHandle": "r", "body": json.dumps(envelope),
            "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
            "eventSource": "aws:sqs",
            "eventSourceARN": f"arn:aws:sqs:{REGION}:123456789012:dpc-slack-notes",
            "awsRegion": REGION}


def test_slack_poster_posts_what_the_notes_queue_delivers(
        central: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from fakes.slack_server import FakeSlack

    register_case_study(central)
    sns = _sns_record(_note("PIPELINE_STARTED", "RUNNING"))["Records"][0]["Sns"]
    with FakeSlack(token=SLACK_TOKEN) as slack:
        monkeypatch.setenv("DPC_SLACK_API_URL", slack.api_url)
        out = slack_poster.handle({"Records": [_sqs_record(sns)]}, None)
        assert out == {"posted": 1, "batchItemFailures": []}
        assert len(slack.roots("data-pipeline-alerts")) == 1
        # A record whose channel cannot be told is given back to SQS, alone.
        monkeypatch.setenv("DPC_SLACK_API_URL", "http://127.0.0.1:9")
        monkeypatch.setenv("DPC_NOTIFY_TIMEOUT", "1")
        from dpc_central.handlers import _common

        _common.reset()
        finished = _sns_record(_note("PIPELINE_FINISHED", "FAILED"))["Records"][0]["Sns"]
        out = slack_poster.handle({"Records": [_sqs_record(finished, "q2"),
                                               _sqs_record({"Type": "x"}, "q3")]}, None)
        assert out["batchItemFailures"] == [{"itemIdentifier": "q2"}]


def test_slack_poster_confirms_a_pipeline_topics_subscription_only_at_sns(
        central: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """A topic of a member account subscribes the central queue: SNS asks the queue
    owner to visit the SubscribeURL ("Sending Amazon SNS messages to an Amazon SQS queue
    in a different account"); the poster does, and only for SNS's own link to that
    topic."""
    from fakes.sns_confirm_server import FakeSnsConfirm

    topic = f"arn:aws:sns:{REGION}:{C}:dpc-pipeline-x"
    with FakeSnsConfirm() as sns:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SNS", sns.url)
        good = (f"{sns.url}/?Action=ConfirmSubscription&TopicArn={topic}&Token=t0k")
        message = {"Type": "SubscriptionConfirmation", "TopicArn": topic, "Token": "t0k",
                   "SubscribeURL": good, "MessageId": "c1"}
        out = slack_poster.handle({"Records": [_sqs_record(message)]}, None)
        assert out == {"posted": 0, "batchItemFailures": []}
        assert sns.confirmed == [{"Action": "ConfirmSubscription", "TopicArn": topic,
                                  "Token": "t0k"}]
        for url, arn in [
                # Another host, another topic, another action, not a dpc topic.
                (good.replace("127.0.0.1", "localhost"), topic),
                (good.replace("dpc-pipeline-x", "dpc-other"), topic),
                (good.replace("ConfirmSubscription", "Unsubscribe"), topic),
                (good.replace("dpc-pipeline-x", "orders"),
                 topic.replace("dpc-pipeline-x", "orders"))]:
            slack_poster.handle({"Records": [_sqs_record({**message, "SubscribeURL": url,
                                                          "TopicArn": arn})]}, None)
        assert len(sns.confirmed) == 1
    monkeypatch.delenv("AWS_ENDPOINT_URL_SNS")
    assert slack_poster.subscribe_url_ok(
        f"https://sns.{REGION}.amazonaws.com/?Action=ConfirmSubscription&TopicArn={topic}"
        "&Token=x", topic)
    assert not slack_poster.subscribe_url_ok(
        f"http://sns.{REGION}.amazonaws.com/?Action=ConfirmSubscription&TopicArn={topic}"
        "&Token=x", topic)
    assert not slack_poster.subscribe_url_ok(
        f"https://sns.{REGION}.amazonaws.com.evil.example/?Action=ConfirmSubscription"
        f"&TopicArn={topic}&Token=x", topic)
